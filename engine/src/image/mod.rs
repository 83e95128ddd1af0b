//! Images: references, the registry protocol over a transport trait, manifests, the
//! streamed layer scan, the merged file index, the deterministic layer writer, push.

pub mod cache;
pub mod digest;
pub mod file_index;
pub mod layer_writer;
pub mod limits;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod transport;

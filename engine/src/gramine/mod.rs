//! Gramine: the convert-image request, the enclave spec derived from it and the image,
//! and the two manifests (SGX1 and EDMM) in canonical TOML.
//!
//! Pipeline: [`request::parse_request`] → [`validate::validate`] → [`spec::build_spec`]
//! (with the image config, the [`crate::image::file_index::FileIndex`] and a
//! [`runtime::RuntimeDescriptor`]) → [`manifest::render_manifest`] for each
//! [`manifest::Variant`].

pub mod canonical;
pub mod options;
pub mod paths;
pub mod request;
pub mod size;
pub mod validate;

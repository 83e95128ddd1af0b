//! The runtime image (docs/image-formats.md, "Runtime image"): Gramine's runtime as a
//! single-layer OCI image, built once by `kiln runtime pack` and referenced by every
//! conversion.
//!
//! - [`labels`]: the config labels and reading the descriptor back from a config.
//! - [`build`]: the deterministic layer, config and manifest from the runtime's files.

pub mod build;
pub mod labels;

pub use build::{build_runtime_image, BuiltRuntimeImage, RuntimeFiles};
pub use labels::{descriptor_from_config, RuntimeImageError};

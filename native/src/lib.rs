//! Native implementations of kiln engine traits: the HTTP [`Transport`] (reqwest over
//! rustls, streaming both ways), docker `config.json` credentials, and OCI image
//! layouts on disk (`oci:DIR[:TAG]`), also served as registries to the pipeline
//! ([`LayoutTransport`]).
//!
//! [`Transport`]: kiln_engine::image::transport::Transport

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod default_key;
pub mod docker_config;
pub mod http;
pub mod oci_blobs;
pub mod oci_layout;
pub mod oci_layout_writer;
pub mod oci_registry;
pub mod scans;
pub mod state;
pub mod timer;

pub use default_key::DefaultKeySigner;
pub use docker_config::{DockerConfig, DockerConfigError};
pub use http::{HttpOptions, HttpTransport, HttpTransportError};
pub use oci_layout::{OciLayout, OciLayoutError};
pub use oci_layout_writer::OciLayoutWriter;
pub use oci_registry::LayoutTransport;
pub use scans::ThreadedScans;
pub use state::{StateDir, StateError};
pub use timer::TokioTimer;

//! Native implementations of kiln engine traits: the HTTP [`Transport`] (reqwest over
//! rustls, streaming both ways) and docker `config.json` credentials.
//!
//! [`Transport`]: kiln_engine::image::transport::Transport

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod docker_config;
pub mod http;

pub use docker_config::{DockerConfig, DockerConfigError};
pub use http::{HttpOptions, HttpTransport, HttpTransportError};

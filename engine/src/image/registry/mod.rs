//! The registry protocol (OCI distribution / Docker registry v2) over a
//! [`Transport`](crate::image::transport::Transport): manifests, blobs, uploads,
//! mounts, tags, and authentication (anonymous, basic, bearer tokens).
//!
//! Push order for an image: blobs ([`RegistryClient::blob_exists`], else
//! [`RegistryClient::mount_blob`], else [`RegistryClient::push_blob`]), then the
//! manifest by digest ([`RegistryClient::push_manifest`]), then the tag last
//! ([`RegistryClient::tag_manifest`]), so a tag never names an incomplete image.
//! [`BlobCopy`] does the blob step for a blob taken from another repository.

pub mod auth;
pub mod blob_stream;
pub mod client;
pub mod copy;
pub mod error;
pub mod resume;
pub mod retry;
pub mod upload;

pub use auth::{Challenge, Credentials, Scope};
pub use blob_stream::{blob_to_body_stream, BlobStream, SourceError, VerifiedStream};
pub use client::{ClientOptions, ManifestInfo, RegistryClient, RegistryConfig, ResolvedImage};
pub use copy::{BlobCopy, CopyOutcome};
pub use error::{ErrorClass, RegistryError};
pub use retry::{
    Retry, RetryNotice, RetryObserver, RetryPolicy, RetrySettingError, Timer, RETRY_NAMES,
};
pub use upload::{MountOutcome, UploadMode, UploadSession, DEFAULT_CHUNK_SIZE};

#[cfg(test)]
mod mock_tests;

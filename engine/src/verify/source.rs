//! Where layer blobs come from: a registry (through the engine's transport-based
//! [`RegistryClient`]) or anything else that yields a verified blob stream (the native
//! OCI layout reader).

use futures_util::StreamExt;

use crate::image::reference::Digest;
use crate::image::registry::blob_stream::BlobStream;
use crate::image::registry::RegistryClient;
use crate::image::scan::{CaptureSet, LayerScanner, LayerSummary, ScanError};
use crate::util::MaybeSend;

/// Why a blob could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The blob could not be opened or streamed.
    #[error("blob {digest}: {message}")]
    Fetch {
        /// The blob digest.
        digest: String,
        /// What went wrong.
        message: String,
    },
    /// The layer does not scan (digest mismatch, bad compression, bad tar).
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// A source of blobs by digest.
#[kiln_macros::async_trait]
pub trait BlobSource: MaybeSend {
    /// Opens the blob `digest` of `size` bytes as a stream that verifies digest and size.
    async fn open(&self, digest: &Digest, size: u64) -> Result<BlobStream, SourceError>;
}

/// Blobs of one repository of a registry.
#[derive(Debug)]
pub struct RegistryBlobs<'a> {
    client: &'a RegistryClient,
    repository: String,
}

impl<'a> RegistryBlobs<'a> {
    /// Blobs of `repository` through `client`.
    pub fn new(client: &'a RegistryClient, repository: &str) -> Self {
        RegistryBlobs {
            client,
            repository: repository.to_string(),
        }
    }
}

#[kiln_macros::async_trait]
impl BlobSource for RegistryBlobs<'_> {
    async fn open(&self, digest: &Digest, size: u64) -> Result<BlobStream, SourceError> {
        self.client
            .get_blob(&self.repository, digest, Some(size))
            .await
            .map_err(|e| SourceError::Fetch {
                digest: digest.to_string(),
                message: e.to_string(),
            })
    }
}

/// Streams one layer through a [`LayerScanner`] capturing the files of `capture`.
pub async fn scan_layer(
    blobs: &dyn BlobSource,
    digest: &Digest,
    size: u64,
    media_type: &str,
    capture: CaptureSet,
) -> Result<LayerSummary, SourceError> {
    let mut scanner = LayerScanner::new(&digest.to_string(), media_type)?.capturing(capture);
    let mut stream = blobs.open(digest, size).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SourceError::Fetch {
            digest: digest.to_string(),
            message: e.to_string(),
        })?;
        scanner.feed(&chunk)?;
    }
    Ok(scanner.finish()?)
}

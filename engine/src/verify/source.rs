//! Where layer blobs come from: a registry (through the engine's transport-based
//! [`RegistryClient`]) or anything else that yields a verified blob stream (the native
//! OCI layout reader).

use futures_util::StreamExt;

use crate::image::limits::ImageLimits;
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

    /// The limits its layers are scanned (and merged) under: the defaults unless the
    /// source carries a front's own (a registry client's, e.g. the edge's).
    fn limits(&self) -> ImageLimits {
        ImageLimits::default()
    }
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

    /// The client's limits ([`RegistryClient::with_limits`]).
    fn limits(&self) -> ImageLimits {
        *self.client.limits()
    }
}

/// Streams one layer through a [`LayerScanner`] capturing the files of `capture`, under
/// the source's limits ([`BlobSource::limits`]): a hit is a [`ScanError`] naming the layer
/// and the limit.
pub async fn scan_layer(
    blobs: &dyn BlobSource,
    digest: &Digest,
    size: u64,
    media_type: &str,
    capture: CaptureSet,
) -> Result<LayerSummary, SourceError> {
    let mut scanner = LayerScanner::new(&digest.to_string(), media_type)?
        .with_limits(blobs.limits())
        .capturing(capture);
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// One blob in memory, scanned under `limits`.
    struct OneBlob {
        data: bytes::Bytes,
        limits: ImageLimits,
    }

    #[kiln_macros::async_trait]
    impl BlobSource for OneBlob {
        async fn open(&self, _digest: &Digest, _size: u64) -> Result<BlobStream, SourceError> {
            let chunk: Result<bytes::Bytes, crate::image::registry::RegistryError> =
                Ok(self.data.clone());
            Ok(Box::pin(futures_util::stream::iter([chunk])))
        }

        fn limits(&self) -> ImageLimits {
            self.limits
        }
    }

    #[test]
    fn layers_are_scanned_under_the_sources_limits() {
        let mut h = tar::Header::new_ustar();
        h.set_path("opt/a-long-name").expect("path");
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend([0u8; 1024]);
        let digest = Digest::sha256_of(&t);
        let source = |path_bytes| OneBlob {
            data: t.clone().into(),
            limits: ImageLimits {
                path_bytes,
                ..ImageLimits::default()
            },
        };
        let scan = |s: &OneBlob| {
            futures_util::FutureExt::now_or_never(scan_layer(
                s,
                &digest,
                t.len() as u64,
                "application/vnd.oci.image.layer.v1.tar",
                CaptureSet::empty(0),
            ))
            .expect("never pends")
        };
        assert!(scan(&source(4096)).is_ok());
        let e = scan(&source(8)).expect_err("path-bytes=8");
        let SourceError::Scan(s) = &e else {
            panic!("{e}")
        };
        assert_eq!(s.limit().map(|l| l.name), Some("path-bytes"));
        assert!(e.to_string().contains(&digest.to_string()), "{e}");
    }
}

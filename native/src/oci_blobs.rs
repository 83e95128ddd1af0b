//! An OCI image layout as a [`BlobSource`], so the engine's image readers (inspect,
//! verify) work on `oci:DIR[:TAG]` as on a registry.

use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::BlobStream;
use kiln_engine::verify::{BlobSource, SourceError};

use crate::OciLayout;

#[async_trait::async_trait]
impl BlobSource for OciLayout {
    async fn open(&self, digest: &Digest, size: u64) -> Result<BlobStream, SourceError> {
        self.blob_stream(digest, Some(size))
            .map_err(|e| SourceError::Fetch {
                digest: digest.to_string(),
                message: e.to_string(),
            })
    }
}

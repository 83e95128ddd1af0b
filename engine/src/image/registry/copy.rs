//! Making a blob present in a target repository the cheapest way: already there →
//! nothing; same registry → cross-repository mount; else (or when the mount is
//! refused) stream it from the source straight into the upload, verified on the way,
//! never held whole.

use super::client::RegistryClient;
use super::error::RegistryError;
use super::upload::{MountOutcome, UploadMode};
use super::verify::blob_to_body_stream;
use crate::image::reference::Digest;
use crate::image::transport::Body;

/// What [`copy_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The target already had the blob.
    AlreadyPresent,
    /// Mounted from the source repository (same registry).
    Mounted,
    /// Streamed from the source and uploaded.
    Uploaded,
}

/// Ensures `digest` is in `dst_repo` on `dst`, taking it from `src_repo` on `src`.
/// `size` (from the descriptor) is checked while streaming.
pub async fn copy_blob(
    src: &RegistryClient,
    src_repo: &str,
    dst: &RegistryClient,
    dst_repo: &str,
    digest: &Digest,
    size: Option<u64>,
    mode: UploadMode,
) -> Result<CopyOutcome, RegistryError> {
    if dst.blob_exists(dst_repo, digest).await?.is_some() {
        return Ok(CopyOutcome::AlreadyPresent);
    }
    let session = if src.base_url() == dst.base_url() {
        match dst.mount_blob(dst_repo, digest, src_repo).await? {
            MountOutcome::Mounted => return Ok(CopyOutcome::Mounted),
            MountOutcome::NotMounted(s) => s,
        }
    } else {
        dst.start_upload(dst_repo).await?
    };
    let blob = src.get_blob(src_repo, digest, size).await?;
    let body = Body::Stream {
        stream: blob_to_body_stream(blob),
        length: size,
    };
    dst.upload_session(session, digest, body, mode).await?;
    Ok(CopyOutcome::Uploaded)
}

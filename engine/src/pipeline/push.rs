//! Pushing the converted image: input and runtime layers reused (present → skip, same
//! registry → mount, else streamed across), the kiln layer and config uploaded, the
//! manifest pushed by digest, and the tag written LAST, so a failure before it leaves
//! no tag.

use bytes::Bytes;
use futures_util::StreamExt;

use crate::api::ApiError;
use crate::image::manifest::{ManifestKind, RawManifest};
use crate::image::reference::Digest;
use crate::image::registry::{BlobCopy, CopyOutcome, RegistryError};
use crate::image::transport::Body;

use super::env::PipelineEnv;
use super::errors::{self, Side};
use super::progress::{BlobPush, Event};
use super::resolve::Endpoint;

/// A blob to take from another repository.
#[derive(Debug, Clone)]
pub struct Reused {
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// How many blobs are copied at once.
const COPY_PARALLEL: usize = 4;

fn how(o: CopyOutcome) -> BlobPush {
    match o {
        CopyOutcome::AlreadyPresent => BlobPush::Present,
        CopyOutcome::Mounted => BlobPush::Mounted,
        CopyOutcome::Uploaded => BlobPush::Copied,
    }
}

/// The registry host an error names, if it names one.
fn failing_registry(e: &RegistryError) -> Option<&str> {
    match e {
        RegistryError::Unauthorized { registry, .. }
        | RegistryError::Forbidden { registry, .. }
        | RegistryError::NotFound { registry, .. }
        | RegistryError::Rejected { registry, .. }
        | RegistryError::Failed { registry, .. }
        | RegistryError::Transport { registry, .. }
        | RegistryError::InvalidResponse { registry, .. } => Some(registry),
        _ => None,
    }
}

/// Makes `blobs` of `from` present in the output repository.
pub async fn reuse_blobs(
    from: &Endpoint,
    side: Side,
    to: &Endpoint,
    blobs: &[Reused],
    env: &PipelineEnv,
) -> Result<(), ApiError> {
    let copies: Vec<_> = blobs
        .iter()
        .map(|b| async move {
            let digest = Digest::parse(&b.digest)
                .map_err(|e| ApiError::bad_request(format!("layer digest: {e}")))?;
            let copy = BlobCopy {
                src: &from.client,
                src_repo: from.repository(),
                dst: &to.client,
                dst_repo: to.repository(),
                digest: &digest,
                size: Some(b.size),
                mode: env.upload_mode,
            };
            let outcome = copy.copy().await.map_err(|e| {
                // The source's errors are the source image's; the rest the output's. Only
                // the source's stream checks content.
                let from_source = match failing_registry(&e) {
                    Some(host) => {
                        from.client.host() != to.client.host() && host == from.client.host()
                    }
                    None => matches!(e, RegistryError::ContentMismatch { .. }),
                };
                if from_source {
                    errors::registry(side, &e)
                } else {
                    errors::registry(Side::Output, &e)
                }
            })?;
            env.progress.event(Event::Blob {
                digest: b.digest.clone(),
                size: b.size,
                how: how(outcome),
            });
            Ok::<_, ApiError>(())
        })
        .collect();
    let results: Vec<Result<(), ApiError>> = futures_util::stream::iter(copies)
        .buffer_unordered(COPY_PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Uploads a blob held in memory unless the output repository has it.
pub async fn upload_blob(
    to: &Endpoint,
    digest: &str,
    data: Bytes,
    env: &PipelineEnv,
) -> Result<(), ApiError> {
    let d = Digest::parse(digest).map_err(|e| ApiError::internal(format!("digest: {e}")))?;
    let size = data.len() as u64;
    let present = to
        .client
        .blob_exists(to.repository(), &d)
        .await
        .map_err(|e| errors::registry(Side::Output, &e))?;
    let how = if present.is_some() {
        BlobPush::Present
    } else {
        to.client
            .push_blob(to.repository(), &d, Body::Bytes(data), env.upload_mode)
            .await
            .map_err(|e| errors::registry(Side::Output, &e))?;
        BlobPush::Uploaded
    };
    env.progress.event(Event::Blob {
        digest: digest.to_string(),
        size,
        how,
    });
    Ok(())
}

/// Pushes the output image: the kiln layer and the config go up while the input layers'
/// uploads (`uploads`) finish; then the manifest by digest and the tag, last.
pub async fn push_image(
    to: &Endpoint,
    image: &super::output::OutputImage,
    uploads: super::scan::PendingUploads,
    env: &PipelineEnv,
) -> Result<Digest, ApiError> {
    let own_blobs = async {
        let layer = &image.kiln_layer;
        upload_blob(to, &layer.digest, Bytes::from(layer.blob.clone()), env).await?;
        upload_blob(
            to,
            &image.config_digest,
            Bytes::from(image.config.clone()),
            env,
        )
        .await
    };
    futures_util::future::try_join(uploads.finish(), own_blobs).await?;
    push_manifest(to, image.manifest.clone()).await
}

/// Pushes the manifest by digest, then points the output tag at it (last). An output
/// named by digest must be this manifest's digest.
pub async fn push_manifest(to: &Endpoint, manifest: Vec<u8>) -> Result<Digest, ApiError> {
    let raw = RawManifest::with_kind(manifest, ManifestKind::OciManifest);
    if let Some(want) = to.reference.digest() {
        if want != raw.digest() {
            return Err(ApiError::bad_request(format!(
                "outputImageName: names digest {want}, but the converted image is {}",
                raw.digest()
            )));
        }
    }
    let digest = to
        .client
        .push_manifest(to.repository(), &raw)
        .await
        .map_err(|e| errors::registry(Side::Output, &e))?;
    if let Some(tag) = to.reference.tag() {
        to.client
            .tag_manifest(to.repository(), tag, &raw)
            .await
            .map_err(|e| errors::registry(Side::Output, &e))?;
    }
    Ok(digest)
}

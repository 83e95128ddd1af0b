//! `externalPackages`: natively, the directory where kiln looks the runtime image up.
//!
//! The directory is an OCI image layout (what `kiln runtime pack --out oci:DIR[:TAG]`
//! writes). The runtime image is the one tagged like `--runtime`'s tag, else the
//! layout's only image. Its blobs and manifest are pushed **by digest, without a tag**
//! into the output repository (where the converted image needs its layer anyway), and
//! the pipeline then reads the runtime from there as from any registry: nothing is
//! left behind under a name, and a failed conversion leaves only untagged blobs.
//!
//! The browser and the worker have no filesystem: there the engine refuses the field.

use anyhow::Context;
use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::reference::{Digest, Reference};
use kiln_engine::image::registry::{blob_to_body_stream, UploadMode};
use kiln_engine::image::transport::Body;
use kiln_engine::pipeline::resolve::Endpoint;
use kiln_native::OciLayout;

/// Chunk size for runtime layer uploads.
const CHUNK: usize = 8 * 1024 * 1024;

/// Copies the runtime image from the layout at `dir` into the `output` repository by
/// digest (with the output's credentials); returns the reference
/// (`REGISTRY/REPO@sha256:...`) to convert with.
pub async fn stage_runtime(dir: &str, runtime: &str, output: &Endpoint) -> anyhow::Result<String> {
    let layout = OciLayout::open(std::path::Path::new(dir))
        .with_context(|| format!("externalPackages: {dir} is not an OCI image layout"))?;
    let wanted_tag = Reference::parse(runtime)
        .ok()
        .and_then(|r| r.tag().map(str::to_string));
    let tag = wanted_tag
        .as_deref()
        .filter(|t| layout.find(Some(t)).is_ok());
    let image = layout
        .resolve(tag, &PlatformSpec::linux_amd64())
        .with_context(|| {
            format!(
                "externalPackages: no runtime image in {dir} (looked for tag {wanted_tag:?}, else the only image)"
            )
        })?;
    let client = &output.client;
    let output = &output.reference;
    let repo = output.repository();
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for l in image.image_manifest.layers() {
        let d = Digest::try_from(l.digest())
            .with_context(|| format!("externalPackages: {dir}: layer digest {}", l.digest()))?;
        blobs.push((d, l.size()));
    }
    for (digest, size) in &blobs {
        if client.blob_exists(repo, digest).await?.is_some() {
            continue;
        }
        let (stream, source_error) = blob_to_body_stream(layout.blob_stream(digest, Some(*size))?);
        let pushed = client
            .push_blob(
                repo,
                digest,
                Body::Stream {
                    stream,
                    length: Some(*size),
                },
                UploadMode::Chunked { chunk_size: CHUNK },
            )
            .await;
        // A layer file of the layout that cannot be read (or does not match its digest)
        // is the error, not the upload it cut short.
        pushed
            .map_err(|e| source_error.take().unwrap_or(e))
            .with_context(|| format!("externalPackages: pushing runtime layer {digest}"))?;
    }
    let config_digest = Digest::sha256_of(&image.config);
    if client.blob_exists(repo, &config_digest).await?.is_none() {
        client
            .push_blob(
                repo,
                &config_digest,
                Body::Bytes(image.config.clone()),
                UploadMode::Monolithic,
            )
            .await
            .context("externalPackages: pushing the runtime config")?;
    }
    client
        .push_manifest(repo, &image.manifest)
        .await
        .context("externalPackages: pushing the runtime manifest")?;
    Ok(format!("{}@{}", output.name(), image.manifest.digest()))
}

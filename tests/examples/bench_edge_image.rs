//! Pushes a deterministic many-file image for the worker benchmark (scripts/bench-worker.sh,
//! worker/test/bench-isolate.mjs): the busybox sample's base layer (so the entrypoint
//! exists) plus `LAYERS` layers holding `FILES` files of incompressible bytes (xorshift, seeded
//! by position), `MIB` MiB of them in all, as `REPO:TAG` (plain HTTP, anonymous). Layers are
//! built, compressed and pushed one at a time, so this holds one layer in memory. The layers
//! are gzip with stored blocks (level 0): what deflate emits for incompressible bytes anyway,
//! and quick to make in the dev profile.
//!
//! `cargo run -p kiln-tests --example bench_edge_image -- 127.0.0.1:PORT REPO:TAG MIB FILES LAYERS`

use std::sync::Arc;

use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::images::{noise, push_blob_if_missing, tar_of, Blob, FileSpec};
use kiln_tests::sample_images::busybox_image;
use kiln_tests::HarnessError;
use serde_json::json;

/// Gzip, stored blocks, fixed header (mtime 0).
fn gzip_stored(data: &[u8]) -> Result<Vec<u8>, HarnessError> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut e, data)?;
    Ok(e.finish()?)
}

fn arg<T: std::str::FromStr>(v: Option<String>, name: &str) -> Result<T, HarnessError> {
    let s = v.ok_or_else(|| {
        format!("usage: bench_edge_image HOST:PORT REPO:TAG MIB FILES LAYERS (missing {name})")
    })?;
    Ok(s.parse()
        .map_err(|_| format!("{name}: not a number: {s}"))?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let mut args = std::env::args().skip(1);
    let host: String = args
        .next()
        .ok_or("usage: bench_edge_image HOST:PORT REPO:TAG MIB FILES LAYERS")?;
    let target: String = args.next().ok_or("REPO:TAG missing")?;
    let (repo, tag) = target.rsplit_once(':').ok_or("REPO:TAG: no tag")?;
    let mib: u64 = arg(args.next(), "MIB")?;
    let files: u64 = arg(args.next(), "FILES")?;
    let layers: u64 = arg(args.next(), "LAYERS")?;
    if files == 0 || layers == 0 || layers > files {
        return Err("FILES and LAYERS must be positive, LAYERS <= FILES".into());
    }
    let file_len = usize::try_from(mib * 1024 * 1024 / files).map_err(|_| "MIB: too large")?;
    let client = RegistryClient::new(
        Arc::new(HttpTransport::new()?),
        &host,
        ClientOptions {
            insecure: true,
            credentials: None,
        },
    );
    let busybox = busybox_image()?;
    let base = busybox
        .layers
        .first()
        .ok_or("busybox sample has no layer")?
        .clone();
    let mut base_tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&base.data[..]),
        &mut base_tar,
    )?;
    push_blob_if_missing(&client, repo, &base, UploadMode::Monolithic).await?;
    let mut descriptors = vec![base.descriptor()];
    let mut diff_ids = vec![Digest::sha256_of(&base_tar).to_string()];
    let mut compressed = base.data.len() as u64;
    for l in 0..layers {
        // Files l, l + LAYERS, ...: every layer gets its share, FILES in all.
        let specs: Vec<FileSpec> = (l..files)
            .step_by(usize::try_from(layers).map_err(|_| "LAYERS: too large")?)
            .map(|f| {
                FileSpec::new(
                    &format!("data/l{l}/d{}/f{f}.bin", f / 1000),
                    noise(file_len, 0x6b696c6e ^ (f + 1)),
                )
            })
            .collect();
        let tar = tar_of(&specs)?;
        drop(specs);
        diff_ids.push(Digest::sha256_of(&tar).to_string());
        let blob = Blob::new(OCI_LAYER_GZIP, gzip_stored(&tar)?);
        drop(tar);
        push_blob_if_missing(&client, repo, &blob, UploadMode::Monolithic).await?;
        compressed += blob.data.len() as u64;
        descriptors.push(blob.descriptor());
    }
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2025-01-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/bin/sh", "-c", "ls /data"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&cfg)?);
    push_blob_if_missing(&client, repo, &config, UploadMode::Monolithic).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": descriptors,
    });
    let manifest =
        RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest);
    let d = client.push_manifest(repo, &manifest).await?;
    client.tag_manifest(repo, tag, &manifest).await?;
    println!(
        "pushed {host}/{repo}:{tag} ({d}; {} layers, {files} files of {file_len} bytes, {compressed} compressed layer bytes)",
        layers + 1
    );
    Ok(())
}

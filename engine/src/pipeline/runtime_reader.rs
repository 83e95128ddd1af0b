//! Reading a kiln runtime image (docs/image-formats.md, "Runtime image (format 1)"):
//! the descriptor from the config label, the single layer's descriptor and diff_id, and
//! `sgx/libpal.so` streamed out of the layer once, checked against
//! `sgxLibpalSha256`, and cached by layer digest. The same scan records the SHA-256 of
//! `<prefix>/kiln-init` (the scanner hashes every file), cached alongside: the manifests
//! list it as a trusted file when a request has certificates.

use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::api::ApiError;
use crate::gramine::runtime_descriptor::RuntimeDescriptor;
use crate::image::manifest::PlatformSpec;
use crate::image::reference::Digest;
use crate::image::scan::{CaptureSet, LayerScanner};
use crate::runtime_image::descriptor_from_config;

use super::env::PipelineEnv;
use super::errors::{self, Side};
use super::resolve::Endpoint;

/// Largest PAL accepted (a real one is ~1 MiB).
const PAL_MAX: u64 = 64 * 1024 * 1024;

/// A runtime image, read.
#[derive(Debug, Clone)]
pub struct RuntimeImage {
    /// The runtime image's manifest digest.
    pub manifest_digest: String,
    /// Its descriptor.
    pub descriptor: RuntimeDescriptor,
    /// The runtime layer's descriptor, verbatim from the runtime manifest.
    pub layer: serde_json::Value,
    /// The runtime layer's digest.
    pub layer_digest: String,
    /// The runtime layer's size.
    pub layer_size: u64,
    /// The runtime layer's diff_id (from the runtime config).
    pub diff_id: String,
    /// `sgx/libpal.so`, checked.
    pub libpal: Arc<Vec<u8>>,
    /// SHA-256 of `<prefix>/kiln-init` when the runtime layer has it as a regular file.
    pub kiln_init_sha256: Option<[u8; 32]>,
}

/// The cache key under which a runtime layer's PAL is kept: a digest derived from the
/// layer digest (the store is keyed by digests). Entries are checked on every read.
fn pal_cache_key(layer_digest: &str) -> String {
    let h = Sha256::digest(format!("kiln-runtime-sgx-libpal\0{layer_digest}").as_bytes());
    format!("sha256:{}", hex::encode(h))
}

/// The cache key under which a runtime layer's kiln-init record is kept (the 32-byte hash,
/// or [`NO_INIT`] when the layer has none).
fn init_cache_key(layer_digest: &str) -> String {
    let h = Sha256::digest(format!("kiln-runtime-kiln-init\0{layer_digest}").as_bytes());
    format!("sha256:{}", hex::encode(h))
}

/// The kiln-init record of a runtime layer without kiln-init.
const NO_INIT: &[u8] = b"none";

fn init_record(hash: Option<[u8; 32]>) -> Vec<u8> {
    match hash {
        Some(h) => h.to_vec(),
        None => NO_INIT.to_vec(),
    }
}

/// Reads a kiln-init record back (`None`: not a record; `Some(None)`: no kiln-init).
fn parse_init_record(bytes: &[u8]) -> Option<Option<[u8; 32]>> {
    if bytes == NO_INIT {
        return Some(None);
    }
    <[u8; 32]>::try_from(bytes).ok().map(Some)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Reads the runtime image.
pub async fn read_runtime(runtime: &Endpoint, env: &PipelineEnv) -> Result<RuntimeImage, ApiError> {
    let resolved = runtime
        .client
        .resolve_image(&runtime.reference, &PlatformSpec::linux_amd64())
        .await
        .map_err(|e| errors::registry(Side::Runtime, &e))?;
    let descriptor = descriptor_from_config(&resolved.config).map_err(errors::runtime)?;
    let config: serde_json::Value = serde_json::from_slice(&resolved.config)
        .map_err(|e| errors::runtime(format!("config: {e}")))?;
    let manifest: serde_json::Value = serde_json::from_slice(resolved.manifest.bytes())
        .map_err(|e| errors::runtime(format!("manifest: {e}")))?;
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    let [layer] = layers.as_slice() else {
        return Err(errors::runtime(format!(
            "expected exactly one layer, found {}",
            layers.len()
        )));
    };
    let layer_digest = layer
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| errors::runtime("layer descriptor without digest"))?
        .to_string();
    let layer_size = layer
        .get("size")
        .and_then(|d| d.as_u64())
        .ok_or_else(|| errors::runtime("layer descriptor without size"))?;
    let diff_id = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .and_then(|d| d.first())
        .and_then(|d| d.as_str())
        .ok_or_else(|| errors::runtime("config rootfs.diff_ids is empty"))?
        .to_string();
    let media_type = layer
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(crate::image::layer_writer::LAYER_MEDIA_TYPE)
        .to_string();
    let (libpal, kiln_init_sha256) = libpal(
        runtime,
        env,
        &descriptor,
        &layer_digest,
        &media_type,
        layer_size,
    )
    .await?;
    Ok(RuntimeImage {
        manifest_digest: resolved.manifest.digest().to_string(),
        descriptor,
        layer: layer.clone(),
        layer_digest,
        layer_size,
        diff_id,
        libpal,
        kiln_init_sha256,
    })
}

type PalAndInit = (Arc<Vec<u8>>, Option<[u8; 32]>);

async fn libpal(
    runtime: &Endpoint,
    env: &PipelineEnv,
    descriptor: &RuntimeDescriptor,
    layer_digest: &str,
    media_type: &str,
    layer_size: u64,
) -> Result<PalAndInit, ApiError> {
    let want = descriptor.sgx_libpal_sha256.as_str();
    let init_memo_key = format!("{layer_digest}#kiln-init");
    if let Ok(memo) = env.pal_memo.lock() {
        if let (Some(p), Some(init)) = (
            memo.get(layer_digest),
            memo.get(&init_memo_key).and_then(|r| parse_init_record(r)),
        ) {
            if sha256_hex(p) == want {
                return Ok((p.clone(), init));
            }
        }
    }
    let key = pal_cache_key(layer_digest);
    let ikey = init_cache_key(layer_digest);
    if let (Ok(Some(bytes)), Ok(Some(record))) = (
        env.cache.get_bytes(&key).await,
        env.cache.get_bytes(&ikey).await,
    ) {
        if let (true, Some(init)) = (sha256_hex(&bytes) == want, parse_init_record(&record)) {
            let p = Arc::new(bytes);
            remember(env, layer_digest, &p, init);
            return Ok((p, init));
        }
    }
    let (pal, init) =
        scan_runtime_layer(runtime, descriptor, layer_digest, media_type, layer_size).await?;
    let _ = env.cache.put_bytes(&key, pal.clone()).await;
    let _ = env.cache.put_bytes(&ikey, init_record(init)).await;
    let p = Arc::new(pal);
    remember(env, layer_digest, &p, init);
    Ok((p, init))
}

/// Streams the runtime layer once: the PAL's bytes (checked) and kiln-init's hash.
async fn scan_runtime_layer(
    runtime: &Endpoint,
    descriptor: &RuntimeDescriptor,
    layer_digest: &str,
    media_type: &str,
    layer_size: u64,
) -> Result<(Vec<u8>, Option<[u8; 32]>), ApiError> {
    let want = descriptor.sgx_libpal_sha256.as_str();
    let path = descriptor.path_of(&descriptor.sgx_libpal);
    let digest = Digest::parse(layer_digest).map_err(errors::runtime)?;
    let mut blob = runtime
        .client
        .get_blob(runtime.repository(), &digest, Some(layer_size))
        .await
        .map_err(|e| errors::registry(Side::Runtime, &e))?;
    // The layer's digest is checked as it streams; only the PAL's bytes are kept.
    let mut scanner = pal_scanner(layer_digest, media_type, &path)?;
    while let Some(chunk) = blob.next().await {
        let chunk = chunk.map_err(|e| errors::registry(Side::Runtime, &e))?;
        scanner
            .feed(&chunk)
            .map_err(|e| errors::runtime(format!("layer {layer_digest}: {e}")))?;
    }
    let mut summary = scanner
        .finish()
        .map_err(|e| errors::runtime(format!("layer {layer_digest}: {e}")))?;
    let found = summary.captured.remove(&path).ok_or_else(|| {
        errors::runtime(format!(
            "layer {layer_digest} has no {path} (or it is larger than {PAL_MAX} bytes)"
        ))
    })?;
    let got = sha256_hex(&found);
    if got != want {
        return Err(errors::runtime(format!(
            "{path}: sha256 {got} differs from the descriptor's sgxLibpalSha256 {want}"
        )));
    }
    check_glibc(&summary, descriptor)?;
    Ok((found, kiln_init_hash(&summary, descriptor)))
}

/// Checks that the layer holds the descriptor's glibc files with the hashes the manifests
/// will trust (the last entry for a path wins), so a broken runtime image fails here with
/// the file's name rather than in the enclave.
fn check_glibc(
    summary: &crate::image::scan::LayerSummary,
    descriptor: &RuntimeDescriptor,
) -> Result<(), ApiError> {
    let Some(glibc) = &descriptor.glibc else {
        return Ok(());
    };
    for (path, want) in glibc.trusted_files(descriptor) {
        let got = summary
            .entries
            .iter()
            .rev()
            .find(|e| e.path == path)
            .and_then(|e| match e.kind {
                crate::image::scan::EntryKind::Regular { sha256, .. } => Some(hex::encode(sha256)),
                _ => None,
            });
        match got {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(errors::runtime(format!(
                    "{path}: sha256 {got} differs from the descriptor's glibc.files {want}"
                )))
            }
            None => {
                return Err(errors::runtime(format!(
                    "the descriptor's glibc.files names {path}, which the layer lacks as a regular file"
                )))
            }
        }
    }
    Ok(())
}

/// kiln-init's hash from a scanned runtime layer (a regular file at `<prefix>/kiln-init`;
/// the last entry for the path wins, as in a tar extraction).
fn kiln_init_hash(
    summary: &crate::image::scan::LayerSummary,
    descriptor: &RuntimeDescriptor,
) -> Option<[u8; 32]> {
    let path = crate::gramine::init::kiln_init_path(descriptor);
    summary
        .entries
        .iter()
        .rev()
        .find(|e| e.path == path)
        .and_then(|e| match e.kind {
            crate::image::scan::EntryKind::Regular { sha256, .. } => Some(sha256),
            _ => None,
        })
}

/// A scanner over the runtime layer that keeps only the PAL's bytes (and checks the
/// layer's digest as it streams).
fn pal_scanner(layer_digest: &str, media_type: &str, path: &str) -> Result<LayerScanner, ApiError> {
    Ok(LayerScanner::new(layer_digest, media_type)
        .map_err(|e| errors::runtime(format!("layer {layer_digest}: {e}")))?
        .capturing(CaptureSet::empty(PAL_MAX).paths([path.to_string()])))
}

fn remember(env: &PipelineEnv, layer_digest: &str, pal: &Arc<Vec<u8>>, init: Option<[u8; 32]>) {
    if let Ok(mut memo) = env.pal_memo.lock() {
        memo.insert(layer_digest.to_string(), pal.clone());
        memo.insert(
            format!("{layer_digest}#kiln-init"),
            Arc::new(init_record(init)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer_writer::{write_layer, NewEntry};

    #[test]
    fn picks_the_pal_from_a_written_layer() {
        let long = format!("/opt/kiln/runtime/{}/x", "d".repeat(120));
        let layer = write_layer(
            &[
                NewEntry::file("/opt/kiln/runtime/runtime.json", 0o644, b"{}".to_vec()),
                NewEntry::file(&long, 0o644, vec![7u8; 1000]),
                NewEntry::file("/opt/kiln/runtime/sgx/libpal.so", 0o755, vec![9u8; 5000]),
            ],
            0,
        )
        .unwrap();
        for (path, want) in [
            ("/opt/kiln/runtime/sgx/libpal.so", vec![9u8; 5000]),
            (long.as_str(), vec![7u8; 1000]),
        ] {
            for chunk in [1usize, 7, 512, 100_000] {
                let mut scanner = pal_scanner(
                    &layer.digest,
                    crate::image::layer_writer::LAYER_MEDIA_TYPE,
                    path,
                )
                .unwrap();
                for c in layer.blob.chunks(chunk) {
                    scanner.feed(c).unwrap();
                }
                let mut summary = scanner.finish().unwrap();
                assert_eq!(
                    summary.captured.remove(path),
                    Some(want.clone()),
                    "chunk {chunk}"
                );
                assert!(summary.captured.is_empty());
            }
        }
    }

    #[test]
    fn records_kiln_init_hash_from_the_same_scan() {
        let d = RuntimeDescriptor::from_json(
            serde_json::json!({
                "gramineVersion": "1.9", "prefix": "/opt/kiln/runtime",
                "sgxLibpal": "sgx/libpal.so", "sgxLoader": "sgx/loader",
                "directLibpal": "direct/libpal.so", "libsysdb": "libsysdb.so",
                "libsysdbSha256": "ab".repeat(32), "sgxLibpalSha256": "cd".repeat(32),
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let scan = |entries: &[NewEntry]| {
            let layer = write_layer(entries, 0).unwrap();
            let mut scanner = pal_scanner(
                &layer.digest,
                crate::image::layer_writer::LAYER_MEDIA_TYPE,
                "/opt/kiln/runtime/sgx/libpal.so",
            )
            .unwrap();
            scanner.feed(&layer.blob).unwrap();
            scanner.finish().unwrap()
        };
        let pal = NewEntry::file("/opt/kiln/runtime/sgx/libpal.so", 0o755, vec![9u8; 50]);
        let with = scan(&[
            pal.clone(),
            NewEntry::file("/opt/kiln/runtime/kiln-init", 0o755, b"init".to_vec()),
        ]);
        let want: [u8; 32] = Sha256::digest(b"init").into();
        assert_eq!(kiln_init_hash(&with, &d), Some(want));
        // The summary keeps only the PAL's bytes.
        assert_eq!(with.captured.len(), 1);
        assert_eq!(kiln_init_hash(&scan(&[pal]), &d), None);

        for h in [None, Some(want)] {
            assert_eq!(parse_init_record(&init_record(h)), Some(h));
        }
        assert_eq!(parse_init_record(b"junk"), None);
        assert!(crate::image::digest::parse_sha256(&init_cache_key("sha256:00")).is_ok());
        assert_ne!(init_cache_key("sha256:00"), pal_cache_key("sha256:00"));
    }

    #[test]
    fn cache_key_is_a_digest() {
        assert!(crate::image::digest::parse_sha256(&pal_cache_key("sha256:00")).is_ok());
    }
}

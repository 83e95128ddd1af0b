//! Reading a kiln runtime image (docs/image-formats.md, "Runtime image (format 1)"):
//! the descriptor from the config label, the single layer's descriptor and diff_id, and
//! `sgx/libpal.so` streamed out of the layer once, checked against
//! `sgxLibpalSha256`, and cached by layer digest.

use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::api::ApiError;
use crate::gramine::runtime::RuntimeDescriptor;
use crate::image::manifest::PlatformSpec;
use crate::image::reference::Digest;

use super::env::PipelineEnv;
use super::errors::{self, Side};
use super::resolve::Endpoint;

/// Config label: the runtime format (`1`).
pub const LABEL_FORMAT: &str = "dev.kiln.runtime.format";
/// Config label: the descriptor as compact JSON.
pub const LABEL_DESCRIPTOR: &str = "dev.kiln.runtime.descriptor";
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
}

fn label<'a>(config: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    config.get("config")?.get("Labels")?.get(key)?.as_str()
}

/// The cache key under which a runtime layer's PAL is kept: a digest derived from the
/// layer digest (the store is keyed by digests). Entries are checked on every read.
fn pal_cache_key(layer_digest: &str) -> String {
    let h = Sha256::digest(format!("kiln-runtime-sgx-libpal\0{layer_digest}").as_bytes());
    format!("sha256:{}", hex::encode(h))
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
    let config: serde_json::Value = serde_json::from_slice(&resolved.config)
        .map_err(|e| errors::runtime(format!("config: {e}")))?;
    match label(&config, LABEL_FORMAT) {
        Some("1") => {}
        other => {
            return Err(errors::runtime(format!(
                "label {LABEL_FORMAT} is {other:?}, expected \"1\""
            )))
        }
    }
    let descriptor = label(&config, LABEL_DESCRIPTOR)
        .ok_or_else(|| errors::runtime(format!("label {LABEL_DESCRIPTOR} missing")))?;
    let descriptor =
        RuntimeDescriptor::from_json(descriptor.as_bytes()).map_err(errors::runtime)?;
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
    let libpal = libpal(runtime, env, &descriptor, &layer_digest, layer_size).await?;
    Ok(RuntimeImage {
        manifest_digest: resolved.manifest.digest().to_string(),
        descriptor,
        layer: layer.clone(),
        layer_digest,
        layer_size,
        diff_id,
        libpal,
    })
}

async fn libpal(
    runtime: &Endpoint,
    env: &PipelineEnv,
    descriptor: &RuntimeDescriptor,
    layer_digest: &str,
    layer_size: u64,
) -> Result<Arc<Vec<u8>>, ApiError> {
    let want = descriptor.sgx_libpal_sha256.as_str();
    if let Ok(memo) = env.pal_memo.lock() {
        if let Some(p) = memo.get(layer_digest) {
            if sha256_hex(p) == want {
                return Ok(p.clone());
            }
        }
    }
    let key = pal_cache_key(layer_digest);
    if let Ok(Some(bytes)) = env.cache.get_bytes(&key).await {
        if sha256_hex(&bytes) == want {
            let p = Arc::new(bytes);
            remember(env, layer_digest, &p);
            return Ok(p);
        }
    }
    let path = descriptor.path_of(&descriptor.sgx_libpal);
    let digest = Digest::parse(layer_digest).map_err(errors::runtime)?;
    let mut blob = runtime
        .client
        .get_blob(runtime.repository(), &digest, Some(layer_size))
        .await
        .map_err(|e| errors::registry(Side::Runtime, &e))?;
    let mut gz = flate2::write::MultiGzDecoder::new(TarPick::new(&path));
    while let Some(chunk) = blob.next().await {
        let chunk = chunk.map_err(|e| errors::registry(Side::Runtime, &e))?;
        gz.write_all(&chunk)
            .map_err(|e| errors::runtime(format!("layer {layer_digest}: {e}")))?;
    }
    let pick = gz
        .finish()
        .map_err(|e| errors::runtime(format!("layer {layer_digest}: {e}")))?;
    let found = pick
        .found
        .ok_or_else(|| errors::runtime(format!("layer {layer_digest} has no {path}")))?;
    let got = sha256_hex(&found);
    if got != want {
        return Err(errors::runtime(format!(
            "{path}: sha256 {got} differs from the descriptor's sgxLibpalSha256 {want}"
        )));
    }
    let _ = env.cache.put_bytes(&key, found.clone()).await;
    let p = Arc::new(found);
    remember(env, layer_digest, &p);
    Ok(p)
}

fn remember(env: &PipelineEnv, layer_digest: &str, pal: &Arc<Vec<u8>>) {
    if let Ok(mut memo) = env.pal_memo.lock() {
        memo.insert(layer_digest.to_string(), pal.clone());
    }
}

/// A push-based tar reader that keeps one regular file's contents (by absolute path)
/// and skips everything else. Understands ustar prefixes, PAX `path` records and GNU
/// long names.
#[derive(Debug)]
struct TarPick {
    want: String,
    buf: Vec<u8>,
    /// Bytes of entry data still to pass (including padding), and whether to keep them.
    data_left: u64,
    data_real: u64,
    keeping: Option<Kind>,
    next_name: Option<String>,
    current: Vec<u8>,
    found: Option<Vec<u8>>,
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wanted,
    Pax,
    LongName,
    Skip,
}

fn norm(p: &str) -> String {
    let t = p.trim_start_matches("./").trim_start_matches('/');
    format!("/{}", t.trim_end_matches('/'))
}

fn octal(field: &[u8]) -> std::io::Result<u64> {
    // GNU base-256 for big sizes.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad("size overflows"))?;
        }
        return Ok(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| bad("bad octal number in a tar header"))
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

impl TarPick {
    fn new(want: &str) -> Self {
        TarPick {
            want: norm(want),
            buf: Vec::new(),
            data_left: 0,
            data_real: 0,
            keeping: None,
            next_name: None,
            current: Vec::new(),
            found: None,
            ended: false,
        }
    }

    fn header(&mut self, h: &[u8]) -> std::io::Result<()> {
        if h.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let size = octal(h.get(124..136).unwrap_or_default())?;
        let typeflag = h.get(156).copied().unwrap_or(b'0');
        let mut name = cstr(h.get(0..100).unwrap_or_default());
        if h.get(257..262) == Some(b"ustar") {
            let prefix = cstr(h.get(345..500).unwrap_or_default());
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let kind = match typeflag {
            b'x' => Kind::Pax,
            b'L' => Kind::LongName,
            b'0' | 0 | b'7' => {
                let name = self.next_name.take().unwrap_or(name);
                if norm(&name) == self.want {
                    if size > PAL_MAX {
                        return Err(bad("the SGX PAL is implausibly large"));
                    }
                    Kind::Wanted
                } else {
                    Kind::Skip
                }
            }
            b'g' => Kind::Skip,
            _ => {
                self.next_name = None;
                Kind::Skip
            }
        };
        if matches!(kind, Kind::Pax | Kind::LongName) && size > 1 << 20 {
            return Err(bad("tar extended header too large"));
        }
        self.keeping = Some(kind);
        self.current.clear();
        self.data_real = size;
        self.data_left = size.div_ceil(512) * 512;
        if self.data_left == 0 {
            self.end_entry();
        }
        Ok(())
    }

    fn end_entry(&mut self) {
        let data = std::mem::take(&mut self.current);
        match self.keeping.take() {
            Some(Kind::Wanted) => self.found = Some(data),
            Some(Kind::Pax) => {
                // Records: "<len> key=value\n".
                let text = String::from_utf8_lossy(&data);
                for rec in text.split('\n') {
                    if let Some((_, kv)) = rec.split_once(' ') {
                        if let Some(p) = kv.strip_prefix("path=") {
                            self.next_name = Some(p.to_string());
                        }
                    }
                }
            }
            Some(Kind::LongName) => self.next_name = Some(cstr(&data)),
            _ => {}
        }
    }
}

impl Write for TarPick {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        while !data.is_empty() && !self.ended {
            if self.data_left > 0 {
                let take = (self.data_left as usize).min(data.len());
                let (now, rest) = data.split_at(take);
                if !matches!(self.keeping, Some(Kind::Skip) | None) {
                    let real_left = self
                        .data_real
                        .saturating_sub(self.current.len() as u64)
                        .min(take as u64) as usize;
                    self.current
                        .extend_from_slice(now.get(..real_left).unwrap_or(now));
                }
                self.data_left -= take as u64;
                data = rest;
                if self.data_left == 0 {
                    self.end_entry();
                }
                continue;
            }
            let need = 512 - self.buf.len();
            let take = need.min(data.len());
            let (now, rest) = data.split_at(take);
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() == 512 {
                let h = std::mem::take(&mut self.buf);
                self.header(&h)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer_writer::{write_layer, NewEntry};

    #[test]
    fn picks_one_file_from_a_written_layer() {
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
        for chunk in [1usize, 7, 512, 100_000] {
            let mut gz =
                flate2::write::MultiGzDecoder::new(TarPick::new("/opt/kiln/runtime/sgx/libpal.so"));
            for c in layer.blob.chunks(chunk) {
                gz.write_all(c).unwrap();
            }
            let p = gz.finish().unwrap();
            assert_eq!(
                p.found.as_deref(),
                Some(&vec![9u8; 5000][..]),
                "chunk {chunk}"
            );
            let mut gz = flate2::write::MultiGzDecoder::new(TarPick::new(&long));
            gz.write_all(&layer.blob).unwrap();
            assert_eq!(gz.finish().unwrap().found.unwrap(), vec![7u8; 1000]);
        }
    }

    #[test]
    fn cache_key_is_a_digest() {
        assert!(crate::image::digest::parse_sha256(&pal_cache_key("sha256:00")).is_ok());
    }
}

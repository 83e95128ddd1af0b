//! The layer cache: a layer's [`LayerSummary`] keyed by its compressed digest, so a layer
//! already scanned is never fetched again. Front ends supply the storage (IndexedDB in
//! the browser, a directory natively); the engine has an in-memory one and, natively, a
//! directory-backed one.
//!
//! Stored values are the bytes of [`LayerSummary::to_bytes`] (JSON). A stored summary
//! whose `digest` differs from the key, or that cannot be decoded, is treated as a miss.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::image::digest::parse_sha256;
use crate::image::scan::LayerSummary;
use crate::util::MaybeSend;

/// Why the cache failed (a miss is not an error).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The key is not a `sha256:<hex>` digest.
    #[error("layer cache: bad key: {0}")]
    BadKey(#[from] crate::image::digest::DigestError),
    /// The storage failed.
    #[error("layer cache {operation} {digest}: {message}")]
    Storage {
        /// `get` or `put`.
        operation: &'static str,
        /// The layer digest.
        digest: String,
        /// What the storage reported.
        message: String,
    },
}

/// Byte storage for layer summaries, keyed by compressed layer digest (`sha256:<hex>`).
/// Implement this for a platform's storage; use it through [`LayerCache`].
#[kiln_macros::async_trait]
pub trait LayerCacheStore: MaybeSend {
    /// The bytes stored for `digest`, if any.
    async fn get_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Stores `bytes` for `digest` (replacing any previous value).
    async fn put_bytes(&self, digest: &str, bytes: Vec<u8>) -> Result<(), CacheError>;
}

/// Typed access to a [`LayerCacheStore`].
#[derive(Debug, Clone)]
pub struct LayerCache<S> {
    store: S,
}

impl<S: LayerCacheStore> LayerCache<S> {
    /// A cache over `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The summary cached for the layer `digest`, if any (undecodable or mismatched
    /// entries count as misses).
    pub async fn get(&self, digest: &str) -> Result<Option<LayerSummary>, CacheError> {
        parse_sha256(digest)?;
        let Some(bytes) = self.store.get_bytes(digest).await? else {
            return Ok(None);
        };
        Ok(LayerSummary::from_bytes(&bytes)
            .ok()
            .filter(|s| s.digest == digest))
    }

    /// Caches `summary` under its own digest.
    pub async fn put(&self, summary: &LayerSummary) -> Result<(), CacheError> {
        parse_sha256(&summary.digest)?;
        self.store
            .put_bytes(&summary.digest, summary.to_bytes())
            .await
    }
}

/// An in-memory store (per process / per page).
#[derive(Debug, Default)]
pub struct MemoryCacheStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryCacheStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached layers.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned(operation: &'static str, digest: &str) -> CacheError {
    CacheError::Storage {
        operation,
        digest: digest.to_string(),
        message: "lock poisoned".to_string(),
    }
}

#[kiln_macros::async_trait]
impl LayerCacheStore for MemoryCacheStore {
    async fn get_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let map = self.map.lock().map_err(|_| poisoned("get", digest))?;
        Ok(map.get(digest).cloned())
    }

    async fn put_bytes(&self, digest: &str, bytes: Vec<u8>) -> Result<(), CacheError> {
        let mut map = self.map.lock().map_err(|_| poisoned("put", digest))?;
        map.insert(digest.to_string(), bytes);
        Ok(())
    }
}

/// A store holding one file per layer (`<dir>/sha256-<hex>.json`), written atomically
/// (temporary file, then rename). Native only.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DirCacheStore {
    dir: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl DirCacheStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn file(&self, digest: &str) -> Result<std::path::PathBuf, CacheError> {
        let raw = parse_sha256(digest)?;
        Ok(self.dir.join(format!("sha256-{}.json", hex::encode(raw))))
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[async_trait::async_trait]
impl LayerCacheStore for DirCacheStore {
    async fn get_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let file = self.file(digest)?;
        match std::fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CacheError::Storage {
                operation: "get",
                digest: digest.to_string(),
                message: format!("{}: {e}", file.display()),
            }),
        }
    }

    async fn put_bytes(&self, digest: &str, bytes: Vec<u8>) -> Result<(), CacheError> {
        let file = self.file(digest)?;
        let err = |e: std::io::Error| CacheError::Storage {
            operation: "put",
            digest: digest.to_string(),
            message: format!("{}: {e}", file.display()),
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(err)?;
        std::fs::rename(&tmp, &file).map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::digest::sha256_digest;

    fn summary(digest: &str) -> LayerSummary {
        LayerSummary {
            digest: digest.to_string(),
            diff_id: Some(sha256_digest(b"tar")),
            compressed_size: 3,
            uncompressed_size: 1024,
            entries: Vec::new(),
            captured: Default::default(),
            libc_versions: Default::default(),
            format: crate::image::scan::summary::SUMMARY_FORMAT,
        }
    }

    /// Runs a future that completes on its first poll (everything here is synchronous underneath).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the future never pends")
    }

    fn exercise<S: LayerCacheStore>(cache: LayerCache<S>) {
        let d = sha256_digest(b"blob");
        assert_eq!(block_on(cache.get(&d)).unwrap(), None);
        block_on(cache.put(&summary(&d))).unwrap();
        assert_eq!(block_on(cache.get(&d)).unwrap(), Some(summary(&d)));
        // A value stored under the wrong key is a miss.
        let other = sha256_digest(b"other");
        block_on(cache.store().put_bytes(&other, summary(&d).to_bytes())).unwrap();
        assert_eq!(block_on(cache.get(&other)).unwrap(), None);
        block_on(cache.store().put_bytes(&other, b"garbage".to_vec())).unwrap();
        assert_eq!(block_on(cache.get(&other)).unwrap(), None);
        assert!(block_on(cache.get("md5:00")).is_err());
    }

    #[test]
    fn memory_store() {
        exercise(LayerCache::new(MemoryCacheStore::new()));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn dir_store() {
        let dir = tempfile::tempdir().unwrap();
        exercise(LayerCache::new(DirCacheStore::new(
            dir.path().join("cache"),
        )));
    }
}

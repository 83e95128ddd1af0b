//! [`IdbLayerCache`]: the engine's layer cache ([`LayerCacheStore`]) on IndexedDB
//! (database `kiln-layer-cache`, store `layers`, keyed by compressed layer digest).
//! Usable from the page and from the engine's Web Worker (IndexedDB is per origin).

use js_sys::{Array, Uint8Array};
use kiln_engine::image::cache::{CacheError, LayerCacheStore};
use wasm_bindgen::prelude::*;

use crate::webcrypto::js_error;

#[wasm_bindgen(module = "/src/browser/idb_cache.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn lc_get(key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn lc_put(key: &str, bytes: &Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn lc_clear() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn lc_usage() -> Result<JsValue, JsValue>;
}

/// Why the layer cache's storage failed (outside the engine's get/put).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdbCacheError {
    /// Clearing failed.
    #[error("layer cache: clearing IndexedDB `kiln-layer-cache`: {0}")]
    Clear(String),
    /// Counting failed.
    #[error("layer cache: reading the usage of IndexedDB `kiln-layer-cache`: {0}")]
    Usage(String),
}

/// The layer cache on this origin's IndexedDB.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdbLayerCache;

impl IdbLayerCache {
    /// The cache (the database opens on each call; nothing is held).
    pub fn new() -> Self {
        IdbLayerCache
    }

    /// Deletes every cached layer.
    pub async fn clear(&self) -> Result<(), IdbCacheError> {
        lc_clear()
            .await
            .map(|_| ())
            .map_err(|e| IdbCacheError::Clear(js_error(&e)))
    }

    /// `(entries, bytes)` stored.
    pub async fn usage(&self) -> Result<(u64, u64), IdbCacheError> {
        let v = lc_usage()
            .await
            .map_err(|e| IdbCacheError::Usage(js_error(&e)))?;
        let a = Array::from(&v);
        let n = |i: u32| a.get(i).as_f64().unwrap_or(0.0).max(0.0) as u64;
        Ok((n(0), n(1)))
    }
}

fn storage(operation: &'static str, digest: &str, e: &JsValue) -> CacheError {
    CacheError::Storage {
        operation,
        digest: digest.to_string(),
        message: format!("IndexedDB: {}", js_error(e)),
    }
}

#[async_trait::async_trait(?Send)]
impl LayerCacheStore for IdbLayerCache {
    async fn get_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let v = lc_get(digest)
            .await
            .map_err(|e| storage("get", digest, &e))?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        Ok(Some(Uint8Array::new(&v).to_vec()))
    }

    async fn put_bytes(&self, digest: &str, bytes: Vec<u8>) -> Result<(), CacheError> {
        let arr = Uint8Array::from(bytes.as_slice());
        lc_put(digest, &arr)
            .await
            .map(|_| ())
            .map_err(|e| storage("put", digest, &e))
    }
}

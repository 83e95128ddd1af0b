//! The IndexedDB layer cache in headless Chromium: round trip through the engine's
//! `LayerCache`, usage, clear.
#![cfg(target_arch = "wasm32")]

use kiln_app::browser::idb_cache::IdbLayerCache;
use kiln_engine::image::cache::{LayerCache, LayerCacheStore};
use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::scan::LayerSummary;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn summary(digest: &str) -> LayerSummary {
    LayerSummary {
        digest: digest.to_string(),
        diff_id: Some(sha256_digest(b"tar")),
        compressed_size: 3,
        uncompressed_size: 1024,
        entries: Vec::new(),
        captured: Default::default(),
        libc_versions: Default::default(),
        format: kiln_engine::image::scan::summary::SUMMARY_FORMAT,
    }
}

#[wasm_bindgen_test]
async fn round_trip_usage_and_clear() {
    let store = IdbLayerCache::new();
    store.clear().await.unwrap();
    assert_eq!(store.usage().await.unwrap(), (0, 0));
    let cache = LayerCache::new(store);
    let a = sha256_digest(b"layer a");
    let b = sha256_digest(b"layer b");
    assert_eq!(cache.get(&a).await.unwrap(), None);
    cache.put(&summary(&a)).await.unwrap();
    cache.put(&summary(&b)).await.unwrap();
    assert_eq!(cache.get(&a).await.unwrap(), Some(summary(&a)));
    // Replacing keeps one entry per digest.
    cache.put(&summary(&a)).await.unwrap();
    let (entries, bytes) = store.usage().await.unwrap();
    assert_eq!(entries, 2);
    let one = summary(&a).to_bytes().len() as u64;
    assert_eq!(bytes, 2 * one);
    // Raw bytes under another key are a miss for the typed cache.
    store
        .put_bytes(&sha256_digest(b"c"), b"garbage".to_vec())
        .await
        .unwrap();
    assert_eq!(cache.get(&sha256_digest(b"c")).await.unwrap(), None);
    store.clear().await.unwrap();
    assert_eq!(store.usage().await.unwrap(), (0, 0));
    assert_eq!(cache.get(&a).await.unwrap(), None);
}

//! The tar walk and the file-index merge under small limits: never a panic, and every
//! limit holds (entries per layer, paths in the index, index bytes, path length/depth).
//! Input: a split-size byte, then the raw tar stream.
#![no_main]

use kiln_engine::image::file_index::FileIndex;
use kiln_engine::image::limits::{ImageLimits, INDEX_ENTRY_OVERHEAD};
use kiln_engine::image::scan::tar::TarWalker;
use kiln_engine::image::scan::LayerSummary;
use libfuzzer_sys::fuzz_target;

const LIMITS: ImageLimits = ImageLimits {
    path_bytes: 200,
    path_depth: 16,
    layer_entries: 64,
    image_entries: 256,
    index_bytes: 256 * (INDEX_ENTRY_OVERHEAD + 64),
    layer_bytes: 1 << 20,
    image_bytes: 1 << 21,
    zstd_window: 1 << 20,
    capture_bytes: 4096,
    manifest_layers: 8,
    config_bytes: 4096,
    manifest_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    let Some((&split, tar)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).max(1) * 7;
    let mut walker = TarWalker::new().with_limits(LIMITS);
    for chunk in tar.chunks(split) {
        if walker.push(chunk).is_err() {
            return;
        }
    }
    let Ok(listing) = walker.finish() else { return };
    assert!(listing.entries.len() as u64 <= LIMITS.layer_entries);
    for e in &listing.entries {
        assert!(e.path.len() as u64 <= LIMITS.path_bytes);
    }
    let summary = LayerSummary {
        digest: "sha256:fuzz".into(),
        diff_id: None,
        compressed_size: 0,
        uncompressed_size: listing.size,
        entries: listing.entries,
        captured: listing.captured,
        libc_versions: listing.libc_versions,
        format: kiln_engine::image::scan::summary::SUMMARY_FORMAT,
    };
    // The same layer twice: whiteouts and replacements over a populated index.
    if let Ok(index) = FileIndex::from_layers_limited([&summary, &summary], &LIMITS) {
        assert!(index.entries.len() as u64 <= LIMITS.image_entries);
        let bytes: u64 = index
            .entries
            .keys()
            .map(|k| k.len() as u64 + INDEX_ENTRY_OVERHEAD)
            .sum();
        assert!(bytes <= LIMITS.index_bytes);
        for path in index.entries.keys().take(16) {
            let _ = index.resolve(path);
        }
    }
});

//! Hostile layers against the engine's [`ImageLimits`], natively: each bomb is refused
//! with an error naming the layer and the limit, and the extra memory it takes is
//! measured by a counting global allocator (tests run one at a time under a lock, so
//! the peak is theirs). CPU is bounded by asserting how many bytes were fed before the
//! refusal, never by wall time.

#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::file_index::{FileIndex, MergeError, ResolveError};
use kiln_engine::image::limits::ImageLimits;
use kiln_engine::image::scan::{EntryKind, LayerEntry, LayerScanner, LayerSummary, ScanError};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` alone and returns its result with the peak of extra heap it held.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak)
}

const MB: usize = 1 << 20;
const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A ustar header block.
fn header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(512) {
        v.push(0);
    }
}

/// Feeds `blob` in 64 KiB chunks; returns the result and the compressed bytes fed.
fn scan(
    blob: &[u8],
    media_type: &str,
    limits: ImageLimits,
) -> (Result<LayerSummary, ScanError>, u64) {
    let digest = sha256_digest(blob);
    let mut s = LayerScanner::new(&digest, media_type)
        .unwrap()
        .with_limits(limits);
    for c in blob.chunks(64 * 1024) {
        if let Err(e) = s.feed(c) {
            return (Err(e), s.bytes_fed());
        }
    }
    let fed = s.bytes_fed();
    (s.finish(), fed)
}

fn limit_name(e: &ScanError) -> &'static str {
    e.limit().map(|l| l.name).unwrap_or("none")
}

#[test]
fn deep_pax_path_is_refused_by_path_bytes() {
    let name = format!("{}f", "a/".repeat(40_000));
    let record_body = format!(" path={name}\n");
    let mut len = record_body.len();
    while format!("{len}{record_body}").len() != len {
        len = format!("{len}{record_body}").len();
    }
    let pax = format!("{len}{record_body}");
    let mut t = header("pax", pax.len() as u64, tar::EntryType::XHeader, None);
    t.extend_from_slice(pax.as_bytes());
    pad(&mut t);
    t.extend(header("f", 0, tar::EntryType::Regular, None));
    t.extend([0u8; 1024]);
    let blob = gzip(&t);
    assert!(blob.len() < 2048, "{}", blob.len());
    let ((r, _), peak) = measured(|| scan(&blob, GZ, ImageLimits::default()));
    let e = r.unwrap_err();
    assert_eq!(limit_name(&e), "path-bytes", "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&sha256_digest(&blob)) && msg.contains("path-bytes=4096"),
        "{msg}"
    );
    assert!(peak < 4 * MB, "peak {peak}");

    // The same depth within path-bytes (1-byte components of a raised path-bytes) is
    // refused by path-depth.
    let limits = ImageLimits {
        path_bytes: 1 << 20,
        ..ImageLimits::default()
    };
    let (r, _) = scan(&blob, GZ, limits);
    assert_eq!(limit_name(&r.unwrap_err()), "path-depth");
}

#[test]
fn deep_paths_in_a_summary_cost_linear_memory_in_the_index() {
    // A summary from a cache bypasses the scan: the merge checks paths again.
    let deep = |depth: usize| LayerSummary {
        digest: "sha256:deep".into(),
        diff_id: None,
        compressed_size: 0,
        uncompressed_size: 0,
        entries: vec![LayerEntry {
            path: "/a".repeat(depth),
            kind: EntryKind::Fifo,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }],
        captured: BTreeMap::new(),
        libc_versions: Default::default(),
        format: kiln_engine::image::scan::summary::SUMMARY_FORMAT,
    };
    let l = deep(40_000);
    let (r, peak) = measured(|| FileIndex::from_layers_limited([&l], &ImageLimits::default()));
    match r {
        Err(MergeError::Limit { layer, source }) => {
            assert_eq!(layer, "sha256:deep");
            assert_eq!(source.name, "path-bytes");
        }
        other => panic!("{other:?}"),
    }
    assert!(peak < MB, "peak {peak}");
    // At the limits (256 components), the index holds 257 paths.
    let l = deep(256);
    let ok = FileIndex::from_layers_limited([&l], &ImageLimits::default()).unwrap();
    assert_eq!(ok.entries.len(), 257);
    // index-bytes counts every implicit parent as it is made.
    let small = ImageLimits {
        index_bytes: 100 * 128,
        ..ImageLimits::default()
    };
    let err = FileIndex::from_layers_limited([&l], &small).unwrap_err();
    assert!(err.to_string().contains("index-bytes=12800"), "{err}");
}

#[test]
fn zstd_frame_asking_a_2_gib_window_is_refused() {
    // Frame header: no single segment, no checksum, no dictionary; window descriptor
    // exponent 21 (windowLog 31: 2 GiB); then one raw block that is never reached.
    let mut blob = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3];
    blob.extend([0x01, 0x00, 0x00]); // last raw block of 0 bytes
    let ((r, _), peak) = measured(|| scan(&blob, ZSTD, ImageLimits::default()));
    let e = r.unwrap_err();
    assert_eq!(limit_name(&e), "zstd-window", "{e}");
    assert!(e.to_string().contains("2147483648-byte window"), "{e}");
    assert!(peak < MB, "peak {peak}");
    // A single-segment frame whose content size is the window: 4 GiB - 1.
    // Descriptor: 4-byte content size, single segment.
    let mut blob = vec![0x28, 0xb5, 0x2f, 0xfd, 0b1010_0000];
    blob.extend(0xffff_ffffu32.to_le_bytes());
    blob.extend([0x01, 0x00, 0x00]);
    let (r, _) = scan(&blob, ZSTD, ImageLimits::default());
    assert_eq!(limit_name(&r.unwrap_err()), "zstd-window");
}

#[test]
fn a_100k_symlink_chain_stops_at_the_hop_limit() {
    let n = 100_000;
    let mut t = Vec::with_capacity((n + 2) * 512);
    for i in 0..n {
        let target = format!("l{}", i + 1);
        t.extend(header(
            &format!("l{i}"),
            0,
            tar::EntryType::Symlink,
            Some(&target),
        ));
    }
    t.extend([0u8; 1024]);
    let blob = gzip(&t);
    let ((summary, index, resolved), peak) = measured(|| {
        let (r, _) = scan(&blob, GZ, ImageLimits::default());
        let summary = r.unwrap();
        let index = FileIndex::from_layers_limited([&summary], &ImageLimits::default()).unwrap();
        let resolved = index.resolve("/l0");
        (summary.entries.len(), index.entries.len(), resolved)
    });
    assert_eq!((summary, index), (n, n + 1));
    assert!(matches!(resolved, Err(ResolveError::TooManyLinks { .. })));
    // Summary and index together: well under 64 MB for 100k entries.
    assert!(peak < 64 * MB, "peak {peak}");
}

/// A plain tar of `n` empty files, generated as it is fed; returns the result, the
/// entries pushed before the refusal and the peak memory.
fn empty_files(n: usize, limits: ImageLimits) -> (Result<LayerSummary, ScanError>, u64) {
    let mut s = LayerScanner::new(&sha256_digest(b"unused"), TAR)
        .unwrap()
        .with_limits(limits)
        .source_verified();
    let mut chunk = Vec::with_capacity(64 * 1024);
    for i in 0..n {
        chunk.extend(header(
            &format!("d/{i:08}"),
            0,
            tar::EntryType::Regular,
            None,
        ));
        if chunk.len() == 64 * 1024 {
            if let Err(e) = s.feed(&chunk) {
                return (Err(e), s.bytes_fed() / 512);
            }
            chunk.clear();
        }
    }
    chunk.extend([0u8; 1024]);
    if let Err(e) = s.feed(&chunk) {
        return (Err(e), s.bytes_fed() / 512);
    }
    let fed = s.bytes_fed() / 512;
    (s.finish(), fed)
}

#[test]
fn two_million_empty_files_stop_at_the_entry_limit() {
    let limits = ImageLimits {
        layer_entries: 200_000,
        ..ImageLimits::default()
    };
    let ((r, headers), peak) = measured(|| empty_files(2_000_000, limits));
    let e = r.unwrap_err();
    assert_eq!(limit_name(&e), "layer-entries", "{e}");
    // Refused at the 200,001st entry: no more than one 64 KiB chunk beyond.
    assert!((200_001..=200_001 + 128).contains(&headers), "{headers}");
    // Bytes per entry of a layer summary: LayerEntry (80) + its path (11) + Vec growth.
    let per_entry = peak / 200_000;
    println!("peak {peak} bytes for 200,000 entries: {per_entry} bytes per entry");
    assert!(per_entry <= 256, "{per_entry} bytes per entry");
}

#[test]
fn gzip_bomb_stops_as_soon_as_it_crosses_layer_bytes() {
    // One member with a header announcing a 10 GB file, then 10,000 members of 1 MiB
    // of zeros each (about 1 KB compressed): a 10 MB blob inflating to 10 GB.
    let mut blob = gzip(&header("big", 10 << 30, tar::EntryType::Regular, None));
    let zeros = gzip(&vec![0u8; MB]);
    for _ in 0..10_000 {
        blob.extend_from_slice(&zeros);
    }
    assert!(blob.len() < 12 * MB, "{}", blob.len());
    let limits = ImageLimits {
        layer_bytes: 256 << 20,
        ..ImageLimits::default()
    };
    let ((r, fed), peak) = measured(|| scan(&blob, GZ, limits));
    let e = r.unwrap_err();
    assert_eq!(limit_name(&e), "layer-bytes", "{e}");
    // 256 members make 256 MiB; the refusal comes within one 64 KiB chunk more.
    let needed = (256 * zeros.len() + 512) as u64;
    assert!(
        fed <= needed + 64 * 1024 + zeros.len() as u64,
        "fed {fed}, needed {needed}"
    );
    assert!(peak < 8 * MB, "peak {peak}");
}

#[test]
fn image_entries_and_index_bytes_bound_the_merge() {
    let layer = |name: &str, n: usize| LayerSummary {
        digest: name.into(),
        diff_id: None,
        compressed_size: 0,
        uncompressed_size: 0,
        entries: (0..n)
            .map(|i| LayerEntry {
                path: format!("/{name}/{i}"),
                kind: EntryKind::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
            })
            .collect(),
        captured: BTreeMap::new(),
        libc_versions: Default::default(),
        format: kiln_engine::image::scan::summary::SUMMARY_FORMAT,
    };
    let (a, b) = (layer("a", 600), layer("b", 600));
    let limits = ImageLimits {
        image_entries: 1000,
        ..ImageLimits::default()
    };
    let err = FileIndex::from_layers_limited([&a, &b], &limits).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("layer b:") && msg.contains("image-entries=1000"),
        "{msg}"
    );
    assert!(FileIndex::from_layers_limited([&a], &limits).is_ok());
}

//! The layer scan, the merged index, the layer writer and the cache on a real layer blob
//! (written by GNU tar, see testdata/layers/make.sh), natively and in headless Chromium:
//! `cargo test --release -p kiln-engine --target wasm32-unknown-unknown --test scan_wasm`.

use kiln_engine::image::cache::{LayerCache, MemoryCacheStore};
use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::file_index::{FileIndex, FileKind};
use kiln_engine::image::layer_writer::{write_layer, NewEntry, LAYER_MEDIA_TYPE};
use kiln_engine::image::scan::{scan_blob, LayerScanner, LayerSummary, ScanError};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const BLOB: &[u8] = include_bytes!("../testdata/layers/sample-gnu.tar.gz");
const EXPECTED: &str = include_str!("../testdata/layers/sample-gnu.expected");
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn expected(key: &str) -> &'static str {
    EXPECTED
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{key} missing from sample-gnu.expected"))
}

fn scan_in_chunks(chunk: usize) -> Result<LayerSummary, ScanError> {
    let mut scanner = LayerScanner::new(expected("digest"), GZIP)?.computing_diff_id();
    for piece in BLOB.chunks(chunk) {
        scanner.feed(piece)?;
    }
    scanner.finish()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn scans_a_real_gnu_tar_layer() {
    let summary = scan_in_chunks(64 * 1024).unwrap();
    assert_eq!(summary, scan_in_chunks(1000).unwrap());
    assert_eq!(summary.digest, expected("digest"));
    assert_eq!(summary.diff_id.as_deref(), Some(expected("diff_id")));
    assert_eq!(summary.compressed_size.to_string(), expected("size"));
    assert_eq!(
        summary.uncompressed_size.to_string(),
        expected("uncompressed_size")
    );
    assert_eq!(summary.entries.len().to_string(), expected("tar_entries"));

    let index = FileIndex::from_layers([&summary]).unwrap();
    let mut checked = 0;
    for line in EXPECTED.lines().filter_map(|l| l.strip_prefix("file ")) {
        let f: Vec<&str> = line.split(' ').collect();
        let [path, size, sha, mode, uid, gid] = f[..] else {
            panic!("bad line {line}")
        };
        if path.contains("/.wh.") {
            continue;
        }
        let e = index.get(path).unwrap_or_else(|| panic!("{path} missing"));
        let FileKind::Regular { size: s, sha256 } = &e.kind else {
            panic!("{path} is {:?}", e.kind)
        };
        assert_eq!(s.to_string(), size, "{path}");
        assert_eq!(hex::encode(sha256), sha, "{path}");
        assert_eq!(format!("{:o}", e.mode), mode, "{path}");
        assert_eq!(
            (e.uid.to_string(), e.gid.to_string()),
            (uid.into(), gid.into())
        );
        checked += 1;
    }
    assert_eq!(checked, 9);
    assert_eq!(
        index.get("/dev/null").unwrap().kind,
        FileKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(index.get("/var/fifo").unwrap().kind, FileKind::Fifo);
    assert_eq!(index.get("/var/empty").unwrap().mode, 0o1777);
    assert_eq!(
        index.get("/bin/true").unwrap().kind,
        FileKind::Symlink {
            target: "../usr/bin/true".into()
        }
    );
    assert!(index.get("/etc/.wh.motd").is_none());
    assert_eq!(
        sha256_digest(&index.captured["/etc/passwd"]),
        format!(
            "sha256:{}",
            expected("file /etc/passwd").split(' ').nth(1).unwrap()
        )
    );
    assert!(index.captured.contains_key("/etc/group"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_corrupted_blob_is_refused_with_the_layer_named() {
    let mut bad = BLOB.to_vec();
    bad[BLOB.len() / 2] ^= 0x55;
    let err = scan_blob(expected("digest"), GZIP, &bad).unwrap_err();
    assert!(err.to_string().contains(expected("digest")), "{err}");
}

fn new_layer() -> Vec<NewEntry> {
    vec![
        NewEntry::file("/opt/kiln/app.manifest.sgx", 0o644, b"[loader]\n".to_vec()),
        NewEntry::file("/opt/kiln/launcher", 0o755, vec![0x7f; 70_000]),
        NewEntry::symlink("/opt/kiln/current", "app.manifest.sgx"),
        NewEntry::dir("/opt/kiln/keys", 0o700),
    ]
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn writer_is_deterministic_and_scans_back() {
    let a = write_layer(&new_layer(), 1_700_000_000).unwrap();
    let b = write_layer(&new_layer(), 1_700_000_000).unwrap();
    assert_eq!(a.blob, b.blob);
    assert_eq!(a.digest, sha256_digest(&a.blob));
    let summary = scan_blob(&a.digest, LAYER_MEDIA_TYPE, &a.blob).unwrap();
    assert_eq!(summary.diff_id, Some(a.diff_id.clone()));
    let index = FileIndex::from_layers([&summary]).unwrap();
    let launcher = index.get("/opt/kiln/launcher").unwrap();
    assert_eq!(launcher.mode, 0o755);
    assert_eq!(
        launcher.kind,
        FileKind::Regular {
            size: 70_000,
            sha256: {
                use sha2::Digest;
                sha2::Sha256::digest(vec![0x7f; 70_000]).into()
            }
        }
    );
    assert_eq!(index.get("/opt/kiln/keys").unwrap().mode, 0o700);
    assert_eq!(index.get("/opt").unwrap().kind, FileKind::Directory);
}

/// Polls a future that never waits (the memory store is synchronous underneath).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cached_summary_round_trips() {
    let summary = scan_in_chunks(64 * 1024).unwrap();
    let cache = LayerCache::new(MemoryCacheStore::new());
    block_on(cache.put(&summary)).unwrap();
    let back = block_on(cache.get(&summary.digest)).unwrap().unwrap();
    assert_eq!(back, summary);
    assert_eq!(
        FileIndex::from_layers([&back]).unwrap(),
        FileIndex::from_layers([&summary]).unwrap()
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn writer_gives_the_same_digest_on_every_target() {
    // Pinned: a change here means written layers (and so image digests) changed; that
    // happens if the tar format choices or the gzip backend's output change.
    let layer = write_layer(&new_layer(), 1_700_000_000).unwrap();
    assert_eq!(
        layer.digest,
        "sha256:c9a72c01a0fd6037c29e7dc192bde8350d395b3124f965bbe6e1839d91a08151"
    );
}

/// Milliseconds from a clock that works on both targets.
fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }
}

/// Prints the scan throughput (no timed assertion). Runs in the browser; natively
/// `cargo test --release -p kiln-engine --test scan_wasm -- --ignored --nocapture`.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(not(target_arch = "wasm32"), ignore)]
fn scan_throughput_report() {
    use kiln_engine::image::layer_writer::TarBuilder;
    use std::io::Write;
    let mut x: u32 = 99;
    let mut data = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|j| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if j % 8 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (j % 19) as u8
                }
            })
            .collect()
    };
    // Writer speed (GZIP_LEVEL) on 4 MiB, the scan on a 48 MiB layer written fast.
    let entries: Vec<NewEntry> = (0..4)
        .map(|i| NewEntry::file(format!("/data/f{i}"), 0o644, data(1 << 20)))
        .collect();
    let t0 = now_ms();
    write_layer(&entries, 0).unwrap();
    let t1 = now_ms();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = TarBuilder::new(gz, 0).unwrap();
    let chunk = data(1 << 20);
    for i in 0..48 {
        tar.file(&format!("/data/f{i:02}"), 0o644, &chunk).unwrap();
    }
    let mut gz = tar.finish().unwrap();
    gz.flush().unwrap();
    let blob = gz.finish().unwrap();
    let digest = sha256_digest(&blob);
    let t2 = now_ms();
    let mut scanner = LayerScanner::new(&digest, LAYER_MEDIA_TYPE).unwrap();
    for piece in blob.chunks(64 * 1024) {
        scanner.feed(piece).unwrap();
    }
    let summary = scanner.finish().unwrap();
    let t3 = now_ms();
    let mib = summary.uncompressed_size as f64 / (1 << 20) as f64;
    let report = format!(
        "write_layer: 4 MiB in {:.0} ms ({:.1} MiB/s); scan: {mib:.0} MiB tar ({} KiB gzip) in {:.0} ms ({:.0} MiB/s)",
        t1 - t0,
        4.0 / ((t1 - t0) / 1000.0),
        blob.len() / 1024,
        t3 - t2,
        mib / ((t3 - t2) / 1000.0)
    );
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::console_log!("{report}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("{report}");
}

#[path = "../benches/synth_image/mod.rs"]
mod synth_image;

/// The benchmarks' synthetic image (engine/benches/synth_image: the bytes convert_bench and
/// the scan bench use) scanned here, layer by layer: each gzip layer is generated into
/// memory (not timed), then fed to a `LayerScanner` in 64 KiB pieces (timed). Runs only
/// when built with `KILN_WASM_SCAN_GIB` set (convert_bench sets it and reads the
/// `kiln-wasm-scan` line, to report the wasm figure in the same run as the native scan);
/// otherwise it returns at once.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn synth_image_scan() {
    let Some(gib) = option_env!("KILN_WASM_SCAN_GIB").and_then(|g| g.parse::<f64>().ok()) else {
        return;
    };
    let per = (gib * (1u64 << 30) as f64 / synth_image::LAYERS as f64) as u64;
    let (mut scan_ms, mut gen_ms, mut bytes, mut files) = (0.0, 0.0, 0u64, 0usize);
    for i in 0..synth_image::LAYERS {
        let t0 = now_ms();
        let (blob, digest, _, _) = synth_image::write_layer_into(Vec::new(), i, per).unwrap();
        let t1 = now_ms();
        let mut scanner = LayerScanner::new(&digest, synth_image::GZIP).unwrap();
        for piece in blob.chunks(64 * 1024) {
            scanner.feed(piece).unwrap();
        }
        let summary = scanner.finish().unwrap();
        let t2 = now_ms();
        gen_ms += t1 - t0;
        scan_ms += t2 - t1;
        bytes += summary.uncompressed_size;
        files += summary.entries.len();
    }
    let mib = bytes as f64 / (1 << 20) as f64;
    let line = format!(
        "kiln-wasm-scan seconds={:.3} mib={mib:.1} entries={files} mibps={:.1} generate_seconds={:.1}",
        scan_ms / 1000.0,
        mib / (scan_ms / 1000.0),
        gen_ms / 1000.0
    );
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::console_log!("{line}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("{line}");
}

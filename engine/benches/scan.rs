//! Layer scan benchmark (plain `main`, `harness = false`):
//! `cargo bench -p kiln-engine --bench scan` (or scripts/bench-scan.sh).
//!
//! Generates (once, untimed, cached under target/bench-scan) the synthetic image of
//! `synth_image` (shared with tests/tests/convert_bench.rs): >= 1 GiB uncompressed in
//! >= 20,000 files over 3 gzip layers; then measures in one run:
//! - lower bound: `gzip -dc LAYER | sha256sum` for all layers in parallel;
//! - kiln's native scan: one `LayerScanner` per layer on its own thread, fed from the
//!   file in 64 KiB chunks, then the merged `FileIndex`; and the same with
//!   `LayerScanner::threaded` (tar walk on a second thread per layer);
//! - cached re-scan: every summary from the cache (memory, then a directory) + merge.
//!
//! Prints times, ratios (targets: scan <= 1.3x the lower bound; cached < 5% of the scan)
//! and peak RSS (VmHWM; target < 256 MiB). Environment: `KILN_BENCH_DIR` (where the
//! image goes), `KILN_BENCH_GIB` (uncompressed size, default 1.1), `KILN_BENCH_RUNS`
//! (repetitions; the best is reported, default 2).

#[path = "synth_image/mod.rs"]
mod synth_image;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_engine::image::cache::{DirCacheStore, LayerCache, LayerCacheStore, MemoryCacheStore};
use kiln_engine::image::file_index::FileIndex;
use kiln_engine::image::scan::{LayerScanner, LayerSummary};
use synth_image::{SynthLayer as LayerFile, FORMAT_VERSION, GZIP, LAYERS};

const CHUNK: usize = 64 * 1024;

fn ensure_image(dir: &Path, gib: f64) -> Vec<LayerFile> {
    let marker = dir.join("VERSION");
    let want = format!("{FORMAT_VERSION} {gib}");
    let layer_path = |i: usize| dir.join(format!("layer{i}.tar.gz"));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        let layers: Option<Vec<LayerFile>> = (0..LAYERS)
            .map(|i| {
                let text = std::fs::read_to_string(dir.join(format!("layer{i}.digest"))).ok()?;
                let mut parts = text.split_whitespace();
                let digest = parts.next()?.to_string();
                let diff_id = parts.next()?.to_string();
                let size = parts.next()?.parse().ok()?;
                Some(LayerFile {
                    path: layer_path(i),
                    digest,
                    diff_id,
                    size,
                })
            })
            .collect();
        if let Some(layers) = layers {
            return layers;
        }
    }
    std::fs::create_dir_all(dir).expect("create bench dir");
    let t = Instant::now();
    let layers = synth_image::write_layers(gib, layer_path).expect("generate the image");
    for (i, l) in layers.iter().enumerate() {
        std::fs::write(
            dir.join(format!("layer{i}.digest")),
            format!("{} {} {}", l.digest, l.diff_id, l.size),
        )
        .expect("write digest");
    }
    std::fs::write(&marker, want).expect("write marker");
    eprintln!("generated the image in {:.1?}", t.elapsed());
    layers
}

fn scan_file(layer: &LayerFile, threaded: bool) -> LayerSummary {
    // With the diff_id (which the conversion does not compute): the same work as the
    // `gzip -dc | sha256sum` lower bound plus the per-file hashes, and checked against it.
    let mut scanner = if threaded {
        LayerScanner::threaded(&layer.digest, GZIP)
    } else {
        LayerScanner::new(&layer.digest, GZIP)
    }
    .expect("scanner")
    .computing_diff_id();
    let mut file = File::open(&layer.path).expect("open layer");
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).expect("read layer");
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]).expect("scan");
    }
    scanner.finish().expect("finish scan")
}

fn scan_all(layers: &[LayerFile], threaded: bool) -> Vec<LayerSummary> {
    std::thread::scope(|s| {
        let handles: Vec<_> = layers
            .iter()
            .map(|l| s.spawn(move || scan_file(l, threaded)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scan thread"))
            .collect()
    })
}

fn lower_bound(layers: &[LayerFile]) -> Vec<String> {
    let children: Vec<_> = layers
        .iter()
        .map(|l| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("gzip -dc '{}' | sha256sum", l.path.display()))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn gzip | sha256sum")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("gzip | sha256sum");
            let text = String::from_utf8_lossy(&out.stdout);
            format!("sha256:{}", text.split_whitespace().next().unwrap_or(""))
        })
        .collect()
}

/// Polls a future that never waits (the stores here are synchronous underneath).
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

fn cached_rescan<S: LayerCacheStore>(cache: &LayerCache<S>, layers: &[LayerFile]) -> FileIndex {
    let summaries: Vec<LayerSummary> = layers
        .iter()
        .map(|l| {
            block_on(cache.get(&l.digest))
                .expect("cache get")
                .expect("cache hit")
        })
        .collect();
    FileIndex::from_layers(&summaries).expect("merge")
}

/// CPU seconds used so far by this process (all threads) and by its waited-for
/// children, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    (11..15)
        .filter_map(|i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum::<f64>()
        / 100.0
}

/// Runs `f` `runs` times; returns the best wall time, the CPU time of that run, and
/// its value.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, f64, T) {
    let mut best: Option<(Duration, f64, T)> = None;
    for _ in 0..runs.max(1) {
        let c = cpu_seconds();
        let t = Instant::now();
        let v = f();
        let d = t.elapsed();
        let cpu = cpu_seconds() - c;
        if best.as_ref().is_none_or(|(b, _, _)| d < *b) {
            best = Some((d, cpu, v));
        }
    }
    best.expect("at least one run")
}

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let root = std::env::var_os("KILN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scan"));
    let gib: f64 = std::env::var("KILN_BENCH_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.1);
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let layers = ensure_image(&root, gib);
    let compressed: u64 = layers
        .iter()
        .map(|l| std::fs::metadata(&l.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    let hwm_before = vm_hwm();

    // Warm the page cache so both contenders read from memory.
    for l in &layers {
        let mut f = File::open(&l.path).expect("open");
        std::io::copy(&mut f, &mut std::io::sink()).expect("read");
    }

    let (t_lower, cpu_lower, lower_ids) = best(runs, || lower_bound(&layers));
    let (t_scan, cpu_scan, (summaries, index)) = best(runs, || {
        let summaries = scan_all(&layers, false);
        let index = FileIndex::from_layers(&summaries).expect("merge");
        (summaries, index)
    });
    let hwm_scan = vm_hwm();
    let (t_thr, cpu_thr, (thr_summaries, thr_index)) = best(runs, || {
        let summaries = scan_all(&layers, true);
        let index = FileIndex::from_layers(&summaries).expect("merge");
        (summaries, index)
    });
    assert!(
        thr_summaries == summaries && thr_index == index,
        "threaded scan agrees"
    );
    let hwm_thr = vm_hwm();
    for (s, lower) in summaries.iter().zip(&lower_ids) {
        assert_eq!(
            s.diff_id.as_ref(),
            Some(lower),
            "diff_id agrees with gzip -dc | sha256sum"
        );
    }
    let uncompressed: u64 = summaries.iter().map(|s| s.uncompressed_size).sum();
    let files = index.entries.len();

    let memory = LayerCache::new(MemoryCacheStore::new());
    let disk_dir = root.join("cache");
    let _ = std::fs::remove_dir_all(&disk_dir);
    let disk = LayerCache::new(DirCacheStore::new(&disk_dir));
    for s in &summaries {
        block_on(memory.put(s)).expect("memory put");
        block_on(disk.put(s)).expect("disk put");
    }
    let (t_mem, _, mem_index) = best(runs, || cached_rescan(&memory, &layers));
    let (t_disk, _, disk_index) = best(runs, || cached_rescan(&disk, &layers));
    assert!(
        mem_index == index && disk_index == index,
        "cache gives the same index"
    );
    let summary_bytes: usize = summaries.iter().map(|s| s.to_bytes().len()).sum();

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("kiln layer scan benchmark ({runs} runs each, best shown)");
    println!(
        "image: {LAYERS} gzip layers, {:.0} MiB compressed, {:.0} MiB uncompressed, {files} paths",
        mib(compressed),
        mib(uncompressed)
    );
    println!(
        "lower bound (gzip -dc | sha256sum, layers in parallel): {:>8.2?}  {:>6.0} MiB/s",
        t_lower,
        mib(uncompressed) / t_lower.as_secs_f64()
    );
    println!(
        "kiln scan + merge (threads, 64 KiB chunks):           {:>8.2?}  {:>6.0} MiB/s  ratio {:.2}x (target <= 1.3x)",
        t_scan,
        mib(uncompressed) / t_scan.as_secs_f64(),
        t_scan.as_secs_f64() / t_lower.as_secs_f64()
    );
    println!(
        "kiln threaded scan + merge (2 threads per layer):      {:>8.2?}  {:>6.0} MiB/s  ratio {:.2}x (target <= 1.3x)",
        t_thr,
        mib(uncompressed) / t_thr.as_secs_f64(),
        t_thr.as_secs_f64() / t_lower.as_secs_f64()
    );
    println!(
        "CPU time (user+sys, all threads/processes): lower bound {cpu_lower:.2}s, kiln {cpu_scan:.2}s ({:.2}x), kiln threaded {cpu_thr:.2}s ({:.2}x)",
        cpu_scan / cpu_lower,
        cpu_thr / cpu_lower
    );
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "cached re-scan, memory store:                         {:>8.2?}  {:.2}% of scan (target < 5%)",
        t_mem,
        100.0 * t_mem.as_secs_f64() / t_scan.as_secs_f64()
    );
    println!(
        "cached re-scan, directory store:                      {:>8.2?}  {:.2}% of scan (target < 5%)",
        t_disk,
        100.0 * t_disk.as_secs_f64() / t_scan.as_secs_f64()
    );
    println!(
        "cached summaries: {:.1} MiB JSON for {} entries",
        mib(summary_bytes as u64),
        summaries.iter().map(|s| s.entries.len()).sum::<usize>()
    );
    println!(
        "peak RSS (VmHWM): before scanning {hwm_before}; after scan {hwm_scan}; after threaded scan {hwm_thr}; at end {} (target < 256 MiB)",
        vm_hwm()
    );
}

//! Conversion benchmark (ignored by default; numbers, not assertions):
//!
//! ```sh
//! cargo test -p kiln-tests --release --test convert_bench -- --ignored --nocapture
//! ```
//!
//! A synthetic ~1 GiB image (engine/benches/synth_image: 3 gzip layers, 7,000 small files
//! and big files each, the generator engine/benches/scan.rs uses too) is, in one run,
//! 0. scanned from its OCI layout: `gzip -dc LAYER | sha256sum` for all layers in parallel
//!    (lower bound), then kiln's native scan in this process (threaded scanners, layers
//!    in parallel); the same scan by the engine compiled to wasm in headless Chromium
//!    (once per benchmark, one thread, layers in turn); and, once in local registry A,
//!    copied by `skopeo copy docker://A oci:DIR` (what a plain pull costs);
//! 1. copied A → B by `skopeo copy` (baseline),
//! 2. converted A → C by `kiln convert` (release binary, cold cache: scan + copy; the
//!    state dir holds the user's signing key, made once per state dir, and nothing else),
//! 3. converted again A → C (warm cache, every blob present),
//! 4. converted A → A (same registry: mounts; cold cache),
//! 5. converted A → D with a new, empty state dir (the very first run: key generated too),
//!
//! timing each and reading each kiln run's CPU time and peak RSS (`/usr/bin/time`). The
//! whole sequence runs KILN_BENCH_RUNS times (default 3, fresh registries B and C and
//! fresh state dirs each time) and the best of each is printed: the machine is shared.
//! Env: KILN_BENCH_GIB (default 1.0), KILN_BENCH_KILN (a kiln binary to measure instead
//! of this tree's release build), KILN_BENCH_WASM=0 (skip the wasm scan). The image is generated once under
//! target/kiln-bench-convert/.

#[path = "../../engine/benches/synth_image/mod.rs"]
mod synth_image;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use kiln_engine::image::scan::LayerScanner;
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::{require_tool, HarnessError};
use serde_json::json;
use synth_image::{SynthLayer, GZIP, LAYERS};

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn write_blob(layout: &Path, data: &[u8]) -> Result<(String, u64), HarnessError> {
    let d = kiln_engine::image::digest::sha256_digest(data);
    std::fs::write(blob_path(layout, &d), data)?;
    Ok((d, data.len() as u64))
}

/// The synthetic image as an OCI layout (generated once).
fn ensure_layout(gib: f64) -> Result<PathBuf, HarnessError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kiln-bench-convert");
    let layout = root.join(format!("oci-{gib}"));
    // The generator is unchanged since the first layouts (see synth_image::FORMAT_VERSION).
    if layout.join("index.json").exists() {
        return Ok(layout);
    }
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let t = Instant::now();
    let tmp = layout.clone();
    let written = synth_image::write_layers(gib, |i| tmp.join(format!("layer{i}.tmp")))?;
    let mut layers = Vec::new();
    for l in written {
        let path = blob_path(&layout, &l.digest);
        std::fs::rename(&l.path, &path)?;
        layers.push(SynthLayer { path, ..l });
    }
    let cfg = json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let (cd, cs) = write_blob(&layout, &serde_json::to_vec(&cfg)?)?;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layers.iter().map(|l| json!({"mediaType": GZIP, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
    });
    let (md, ms) = write_blob(&layout, &serde_json::to_vec(&m)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))?,
    )?;
    eprintln!("generated the image in {:.1?}", t.elapsed());
    Ok(layout)
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc/PID/stat`;
/// NaN where it cannot be read.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15; USER_HZ is 100 on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    match f.as_slice() {
        [u, s] => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Runs `cmd`: (wall seconds, its stderr, CPU seconds the processes `pids` used meanwhile:
/// the registries serving it).
fn timed(cmd: &mut Command, pids: &[u32]) -> Result<(f64, String, f64), HarnessError> {
    let cpu = |pids: &[u32]| pids.iter().map(|p| process_cpu(*p)).sum::<f64>();
    let before = cpu(pids);
    let t = Instant::now();
    let o = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    let registries = cpu(pids) - before;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        return Err(format!("{cmd:?}: {err}").into());
    }
    Ok((secs, err, registries))
}

/// The layer blobs of the layout's one manifest, in order.
fn layout_layers(layout: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let md = index["manifests"][0]["digest"]
        .as_str()
        .ok_or("index.json: no manifest digest")?;
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(blob_path(layout, md))?)?;
    let layers = m["layers"].as_array().ok_or("manifest: no layers")?;
    layers
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .map(|d| blob_path(layout, d))
                .ok_or_else(|| "manifest: layer without digest".into())
        })
        .collect()
}

/// Lower bound: `gzip -dc LAYER | sha256sum`, all layers in parallel; seconds.
fn gzip_lower_bound(blobs: &[PathBuf]) -> Result<f64, HarnessError> {
    let t = Instant::now();
    let children = blobs
        .iter()
        .map(|b| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("gzip -dc '{}' | sha256sum", b.display()))
                .stdout(Stdio::null())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        if !c.wait()?.success() {
            return Err("gzip -dc | sha256sum failed".into());
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// kiln's native scan in this process: a threaded `LayerScanner` per layer (tar walk on
/// a second thread), all layers in parallel, fed from the blob in 64 KiB chunks; seconds.
fn native_scan(blobs: &[PathBuf]) -> Result<f64, HarnessError> {
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = blobs
            .iter()
            .map(|b| {
                s.spawn(move || -> Result<(), String> {
                    let name = b.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let digest = format!("sha256:{name}");
                    let mut scanner =
                        LayerScanner::threaded(&digest, GZIP).map_err(|e| e.to_string())?;
                    let mut file = File::open(b).map_err(|e| e.to_string())?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
                        if n == 0 {
                            break;
                        }
                        scanner.feed(&buf[..n]).map_err(|e| e.to_string())?;
                    }
                    scanner.finish().map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "scan thread panicked")??;
        }
        Ok::<(), HarnessError>(())
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// One measured run: wall seconds, CPU seconds (user + sys), peak RSS in MiB, CPU
/// seconds of the registries serving it.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: f64,
    cpu: f64,
    rss: f64,
    registries: f64,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            wall: f64::INFINITY,
            cpu: f64::NAN,
            rss: f64::NAN,
            registries: f64::NAN,
        }
    }
}

impl Run {
    /// Keeps the faster of the two (wall time).
    fn add_run(&mut self, r: Run) {
        if r.wall < self.wall {
            *self = r;
        }
    }

    fn add(&mut self, wall: f64) {
        self.add_run(Run {
            wall,
            ..Run::default()
        });
    }
}

/// The best run of each contender.
#[derive(Debug, Default)]
struct Best {
    lower: Run,
    scan: Run,
    skopeo_oci: Run,
    skopeo: Run,
    cold: Run,
    warm: Run,
    same: Run,
    fresh: Run,
    /// Per run: the cold conversion's wall time over the skopeo copy's of that run.
    paired: Vec<f64>,
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `cmd` (a command under `/usr/bin/time -f "%U %S %M"`) as one measured run; `pids`
/// are the registries serving it.
fn measured(cmd: &mut Command, pids: &[u32]) -> Result<Run, HarnessError> {
    let (wall, err, registries) = timed(cmd, pids)?;
    let (cpu, rss) = time_stats(&err);
    Ok(Run {
        wall,
        cpu,
        rss,
        registries,
    })
}

/// The registries a run talks to: A, and `to` unless it is A.
fn registry_pids(a: &TestRegistry, to: Option<&TestRegistry>) -> Vec<u32> {
    let mut pids = vec![a.pid()];
    pids.extend(to.map(|t| t.pid()).filter(|p| *p != a.pid()));
    pids
}

/// Copies a directory tree, keeping file modes (a state dir with its 0600 key).
fn copy_dir(from: &Path, to: &Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// `/usr/bin/time -f "%U %S %M"` prints user and system seconds and the peak RSS in KiB
/// as the last stderr line; returns (CPU seconds, RSS MiB).
fn time_stats(stderr: &str) -> (f64, f64) {
    let nums: Option<Vec<f64>> = stderr.lines().rev().find_map(|l| {
        let v: Vec<f64> = l
            .split_whitespace()
            .map(|x| x.parse::<f64>())
            .collect::<Result<_, _>>()
            .ok()?;
        (v.len() == 3).then_some(v)
    });
    match nums.as_deref() {
        Some([u, s, m]) => (u + s, m / 1024.0),
        _ => (f64::NAN, f64::NAN),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn convert_vs_skopeo_copy() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let gib: f64 = std::env::var("KILN_BENCH_GIB")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1.0);
    let layout = ensure_layout(gib)?;
    let blobs = layout_layers(&layout)?;
    for b in &blobs {
        // Page cache warm for both contenders.
        std::io::copy(&mut File::open(b)?, &mut std::io::sink())?;
    }
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let a = TestRegistry::plain()?;
    timed(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bench", layout.display()))
            .arg(format!("docker://{}/bench:1", a.host())),
        &[],
    )?;
    push_fixture_runtime(&a.client(None)?, &RuntimeBinaries::placeholders()).await?;

    // KILN_BENCH_KILN: a kiln binary to measure instead of this tree's release build
    // (for before/after comparisons).
    let kiln = match std::env::var_os("KILN_BENCH_KILN") {
        Some(k) => PathBuf::from(k),
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "--release", "--quiet", "-p", "kiln"])
                .status()?;
            if !st.success() {
                return Err("cargo build --release -p kiln failed".into());
            }
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/kiln")
        }
    };
    // One `kiln convert` from A into `out` on registry `to`.
    let kiln_run = |out: &str, to: &TestRegistry, state_dir: &Path| -> Result<Run, HarnessError> {
        let out_host = to.host();
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%U %S %M"])
            .arg(&kiln)
            .args(["convert", "--no-bars", "--input"])
            .arg(format!("{}/bench:1", a.host()))
            .arg("--output")
            .arg(out)
            .arg("--runtime")
            .arg(format!("{}/kiln/runtime:fixture", a.host()))
            .arg("--insecure-registry")
            .arg(a.host())
            .arg("--insecure-registry")
            .arg(out_host)
            .arg("--state-dir")
            .arg(state_dir);
        measured(&mut cmd, &registry_pids(&a, Some(to)))
    };
    // One `skopeo copy` from A to `dst` (on registry `to`, if a registry).
    let skopeo = |dst: String, to: Option<&TestRegistry>| -> Result<Run, HarnessError> {
        measured(
            Command::new("/usr/bin/time")
                .args(["-f", "%U %S %M", "skopeo", "copy", "--quiet"])
                .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                .arg(format!("docker://{}/bench:1", a.host()))
                .arg(dst),
            &registry_pids(&a, to),
        )
    };
    // The user's signing key exists before their first conversion of an image (it is
    // made once per state dir); the cold runs start from a state dir holding only that
    // key. `fresh` measures the very first run of a new state dir (key generated too).
    let key_template = tempfile::tempdir()?;
    kiln_native::state::StateDir::new(key_template.path().to_path_buf())
        .default_key()
        .map_err(|e| e.to_string())?;
    let keyed_state = || -> Result<tempfile::TempDir, HarnessError> {
        let dir = tempfile::tempdir()?;
        copy_dir(key_template.path(), dir.path())?;
        Ok(dir)
    };
    let mut best = Best::default();
    for run in 0..runs {
        best.lower.add(gzip_lower_bound(&blobs)?);
        best.scan.add(native_scan(&blobs)?);
        let oci_dir = tempfile::tempdir()?;
        best.skopeo_oci.add_run(skopeo(
            format!("oci:{}:bench", oci_dir.path().display()),
            None,
        )?);
        drop(oci_dir);
        let (b, c) = (TestRegistry::plain()?, TestRegistry::plain()?);
        let baseline = skopeo(format!("docker://{}/bench:1", b.host()), Some(&b))?;
        let baseline_wall = baseline.wall;
        best.skopeo.add_run(baseline);
        drop(b);
        let state = keyed_state()?;
        let out = format!("{}/bench-sgx:1", c.host());
        let cold = kiln_run(&out, &c, state.path())?;
        // Each cold conversion against the skopeo copy just before it: a machine whose
        // speed drifts during the benchmark moves both sides of the ratio.
        best.paired.push(cold.wall / baseline_wall);
        best.cold.add_run(cold);
        best.warm.add_run(kiln_run(&out, &c, state.path())?);
        let state2 = keyed_state()?;
        let same = format!("{}/bench-sgx-{run}:1", a.host());
        best.same.add_run(kiln_run(&same, &a, state2.path())?);
        drop(c);
        let d = TestRegistry::plain()?;
        let fresh = tempfile::tempdir()?;
        let out = format!("{}/bench-sgx:1", d.host());
        best.fresh.add_run(kiln_run(&out, &d, fresh.path())?);
    }
    let Best {
        lower,
        scan,
        skopeo_oci,
        skopeo,
        cold,
        warm,
        same,
        fresh,
        paired,
    } = best;
    let skopeo_run = skopeo;
    let (lower, scan, skopeo_oci, skopeo) = (lower.wall, scan.wall, skopeo_oci.wall, skopeo.wall);
    let wasm = if std::env::var("KILN_BENCH_WASM").as_deref() == Ok("0") {
        Err("KILN_BENCH_WASM=0".to_string())
    } else {
        wasm_scan(gib)
    };
    println!("convert benchmark, {gib} GiB synthetic image, {LAYERS} layers, best of {runs} runs");
    println!("  gzip -dc | sha256sum, layers in parallel (lower bound) {lower:8.2} s");
    println!(
        "  kiln native scan (threaded, layers in parallel)        {scan:8.2} s  = {:.2}x lower bound",
        scan / lower
    );
    match &wasm {
        Ok((secs, mibps)) => println!(
            "  kiln scan in wasm (Chromium, one thread, layers in turn) {secs:7.2} s  = {:.2}x lower bound  ({mibps:.0} MiB/s)",
            secs / lower
        ),
        Err(why) => println!("  kiln scan in wasm: not measured ({why})"),
    }
    println!(
        "  skopeo copy docker://A oci:DIR                          {skopeo_oci:8.2} s  = {:.2}x lower bound",
        skopeo_oci / lower
    );
    println!(
        "  skopeo copy A->B (baseline)                            {skopeo:8.2} s               CPU {:.2} s  peak RSS {:.0} MiB  registries CPU {:.2} s",
        skopeo_run.cpu, skopeo_run.rss, skopeo_run.registries
    );
    println!(
        "  kiln convert A->C (cold cache)                         {:8.2} s  = {:.2}x skopeo  CPU {:.2} s  peak RSS {:.0} MiB  registries CPU {:.2} s",
        cold.wall, cold.wall / skopeo, cold.cpu, cold.rss, cold.registries
    );
    println!(
        "  the same, run by run (each over that run's skopeo copy)  {}  median {:.2}x",
        paired
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(" "),
        median(paired.clone())
    );
    println!(
        "  kiln convert A->C again (warm)                         {:8.2} s  = {:.1}% of cold  CPU {:.2} s  peak RSS {:.0} MiB  registries CPU {:.2} s",
        warm.wall, 100.0 * warm.wall / cold.wall, warm.cpu, warm.rss, warm.registries
    );
    println!(
        "  kiln convert A->A (mounts, cold)                       {:8.2} s  = {:.2}x skopeo  CPU {:.2} s  peak RSS {:.0} MiB  registries CPU {:.2} s",
        same.wall, same.wall / skopeo, same.cpu, same.rss, same.registries
    );
    println!(
        "  kiln convert A->D (cold, new state dir: key generated)  {:8.2} s  = {:.2}x skopeo  CPU {:.2} s  peak RSS {:.0} MiB  registries CPU {:.2} s",
        fresh.wall, fresh.wall / skopeo, fresh.cpu, fresh.rss, fresh.registries
    );
    println!(
        "  load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

/// The same synthetic image scanned by the engine compiled to wasm, in headless Chromium
/// (engine/tests/scan_wasm.rs `synth_image_scan`, built with `KILN_WASM_SCAN_GIB`): its
/// timed scan seconds and MiB/s, read from the test's `kiln-wasm-scan` line.
fn wasm_scan(gib: f64) -> Result<(f64, f64), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "--release",
            "-p",
            "kiln-engine",
            "--target",
            "wasm32-unknown-unknown",
            "--test",
            "scan_wasm",
            "--",
            "synth_image_scan",
            "--nocapture",
        ])
        .env("KILN_WASM_SCAN_GIB", gib.to_string())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("kiln-wasm-scan "))
        .ok_or_else(|| format!("no kiln-wasm-scan line (exit {})", out.status))?;
    let field = |k: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {k} in {line:?}"))
    };
    Ok((field("seconds=")?, field("mibps=")?))
}

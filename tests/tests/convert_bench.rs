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
//!    in parallel); and, once in local registry A, copied by `skopeo copy docker://A
//!    oci:DIR` (what a plain pull costs);
//! 1. copied A → B by `skopeo copy` (baseline),
//! 2. converted A → C by `kiln convert` (release binary, cold cache: scan + copy),
//! 3. converted again A → C (warm cache, every blob present),
//! 4. converted A → A (same registry: mounts; cold cache),
//!
//! timing each and reading each kiln run's peak RSS (`/usr/bin/time -f %M`).
//! Env: KILN_BENCH_GIB (default 1.0). The image is generated once under
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
use kiln_tests::runtime_fixture::{runtime_image, RuntimeBinaries};
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

fn timed(cmd: &mut Command) -> Result<(f64, String), HarnessError> {
    let t = Instant::now();
    let o = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        return Err(format!("{cmd:?}: {err}").into());
    }
    Ok((secs, err))
}

/// `/usr/bin/time -f %M` prints the peak RSS in KiB as the last stderr line.
fn rss_mib(stderr: &str) -> f64 {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |k| k / 1024.0)
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
    let lower = gzip_lower_bound(&blobs)?;
    let scan = native_scan(&blobs)?;
    let (a, b, c) = (
        TestRegistry::plain()?,
        TestRegistry::plain()?,
        TestRegistry::plain()?,
    );
    let tls = ["--src-tls-verify=false", "--dest-tls-verify=false"];
    timed(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(&tls[1..])
            .arg(format!("oci:{}:bench", layout.display()))
            .arg(format!("docker://{}/bench:1", a.host())),
    )?;
    let rt = runtime_image(&RuntimeBinaries::placeholders())?;
    kiln_tests::images::push_image(
        &a.client(None)?,
        "kiln/runtime",
        &rt,
        Some("fixture"),
        kiln_engine::image::registry::UploadMode::Monolithic,
    )
    .await?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "kiln"])
        .status()?;
    if !st.success() {
        return Err("cargo build --release -p kiln failed".into());
    }
    let kiln = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/kiln");
    let state = tempfile::tempdir()?;
    let kiln_run = |out: String, state_dir: &Path| -> Result<(f64, f64), HarnessError> {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M"])
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
            .arg(c.host())
            .arg("--state-dir")
            .arg(state_dir);
        let (s, err) = timed(&mut cmd)?;
        Ok((s, rss_mib(&err)))
    };
    let (skopeo, _) = timed(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(tls)
            .arg(format!("docker://{}/bench:1", a.host()))
            .arg(format!("docker://{}/bench:1", b.host())),
    )?;
    let oci_dir = tempfile::tempdir()?;
    let (skopeo_oci, _) = timed(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/bench:1", a.host()))
            .arg(format!("oci:{}:bench", oci_dir.path().display())),
    )?;
    drop(oci_dir);
    let (first, rss1) = kiln_run(format!("{}/bench-sgx:1", c.host()), state.path())?;
    let (warm, rss2) = kiln_run(format!("{}/bench-sgx:1", c.host()), state.path())?;
    let state2 = tempfile::tempdir()?;
    let (same, rss3) = kiln_run(format!("{}/bench-sgx:1", a.host()), state2.path())?;
    println!(
        "convert benchmark, {gib} GiB synthetic image, {} layers",
        LAYERS
    );
    println!("  gzip -dc | sha256sum, layers in parallel (lower bound)  {lower:8.2} s");
    println!(
        "  kiln native scan, threaded, layers in parallel {scan:8.2} s  = {:.2}x lower bound",
        scan / lower
    );
    println!(
        "  skopeo copy docker://A oci:DIR     {skopeo_oci:8.2} s  = {:.2}x lower bound",
        skopeo_oci / lower
    );
    println!("  skopeo copy A->B (baseline)        {skopeo:8.2} s");
    println!("  kiln convert A->C (cold cache)     {first:8.2} s  = {:.2}x skopeo  peak RSS {rss1:.0} MiB", first / skopeo);
    println!("  kiln convert A->C again (warm)     {warm:8.2} s  = {:.1}% of first  peak RSS {rss2:.0} MiB", 100.0 * warm / first);
    println!("  kiln convert A->A (mounts, cold)   {same:8.2} s  = {:.2}x skopeo  peak RSS {rss3:.0} MiB", same / skopeo);
    println!(
        "  load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

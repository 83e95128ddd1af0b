//! Conversion benchmark (ignored by default; numbers, not assertions):
//!
//! ```sh
//! cargo test -p kiln-tests --release --test convert_bench -- --ignored --nocapture
//! ```
//!
//! A synthetic ~1 GiB image (3 gzip layers: 7,000 small files and big files each, from a
//! token generator so it compresses like real content, as engine/benches/scan.rs) in
//! local registry A is
//! 1. copied A → B by `skopeo copy` (baseline),
//! 2. converted A → C by `kiln convert` (release binary, cold cache: scan + copy),
//! 3. converted again A → C (warm cache, every blob present),
//! 4. converted A → A (same registry: mounts; cold cache),
//!
//! timing each and reading each kiln run's peak RSS (`/usr/bin/time -f %M`).
//! Env: KILN_BENCH_GIB (default 1.0). The image is generated once under
//! target/kiln-bench-convert/.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln_engine::image::digest::format_sha256;
use kiln_engine::image::layer_writer::{HashingWriter, TarBuilder};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{runtime_image, RuntimeBinaries};
use kiln_tests::{require_tool, HarnessError};
use serde_json::json;

const LAYERS: usize = 3;
const SMALL: usize = 7_000;
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

struct Gen {
    x: u64,
    tokens: Vec<Vec<u8>>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut g = Gen {
            x: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            tokens: Vec::new(),
        };
        for _ in 0..256 {
            let n = 3 + (g.next() % 12) as usize;
            let t: Vec<u8> = (0..n).map(|_| b'a' + (g.next() % 26) as u8).collect();
            g.tokens.push(t);
        }
        g
    }
    fn next(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }
    fn fill(&mut self, buf: &mut Vec<u8>, n: usize) {
        buf.clear();
        while buf.len() < n {
            let r = self.next();
            if r & 7 == 0 {
                buf.extend_from_slice(&r.to_le_bytes());
            } else {
                let t = &self.tokens[((r >> 8) & 255) as usize];
                buf.extend_from_slice(t);
            }
        }
        buf.truncate(n);
    }
}

struct Layer {
    digest: String,
    diff_id: String,
    size: u64,
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn generate_layer(layout: &Path, i: usize, bytes: u64) -> Result<Layer, HarnessError> {
    let tmp = layout.join(format!("layer{i}.tmp"));
    let blob = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(&tmp)?));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(blob, flate2::Compression::fast());
    let mut tar = TarBuilder::new(HashingWriter::new(gz), 1_700_000_000)?;
    let mut g = Gen::new(i as u64 + 1);
    let mut buf = Vec::new();
    let mut written = 0u64;
    if i == 0 {
        tar.directory("/bin", 0o755)?;
        tar.file("/bin/sh", 0o755, b"#!synthetic\n")?;
    }
    let top = format!("/layer{i}");
    tar.directory(&top, 0o755)?;
    for d in 0..100 {
        tar.directory(&format!("{top}/d{d:03}"), 0o755)?;
    }
    for f in 0..SMALL {
        let size = 64 + (g.next() % 16_384) as usize;
        g.fill(&mut buf, size);
        tar.file(&format!("{top}/d{:03}/small-{f:05}", f % 100), 0o644, &buf)?;
        written += size as u64;
    }
    let mut big = 0;
    while written < bytes {
        let size = (bytes - written).min(48 << 20);
        tar.file_header(&format!("{top}/big-{big:03}"), 0o644, size)?;
        let mut left = size;
        while left > 0 {
            let n = left.min(64 * 1024) as usize;
            g.fill(&mut buf, n);
            tar.file_data(&buf)?;
            left -= n as u64;
        }
        tar.end_file()?;
        written += size;
        big += 1;
    }
    let tarw = tar.finish()?;
    let (diff, _) = tarw.hasher.finish();
    let mut blob = tarw.inner.finish()?;
    blob.flush()?;
    let (digest, size) = blob.hasher.finish();
    let digest = format_sha256(&digest);
    std::fs::rename(&tmp, blob_path(layout, &digest))?;
    Ok(Layer {
        digest,
        diff_id: format_sha256(&diff),
        size,
    })
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
    if layout.join("index.json").exists() {
        return Ok(layout);
    }
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let per = (gib * (1u64 << 30) as f64 / LAYERS as f64) as u64;
    let t = Instant::now();
    let handles: Vec<_> = (0..LAYERS)
        .map(|i| {
            let l = layout.clone();
            std::thread::spawn(move || generate_layer(&l, i, per).map_err(|e| e.to_string()))
        })
        .collect();
    let mut layers = Vec::new();
    for h in handles {
        layers.push(h.join().map_err(|_| "generator panicked")??);
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
    let (first, rss1) = kiln_run(format!("{}/bench-sgx:1", c.host()), state.path())?;
    let (warm, rss2) = kiln_run(format!("{}/bench-sgx:1", c.host()), state.path())?;
    let state2 = tempfile::tempdir()?;
    let (same, rss3) = kiln_run(format!("{}/bench-sgx:1", a.host()), state2.path())?;
    println!(
        "convert benchmark, {gib} GiB synthetic image, {} layers",
        LAYERS
    );
    println!("  skopeo copy A->B (baseline)        {skopeo:8.2} s");
    println!("  kiln convert A->C (cold cache)     {first:8.2} s  = {:.2}x skopeo  peak RSS {rss1:.0} MiB", first / skopeo);
    println!("  kiln convert A->C again (warm)     {warm:8.2} s  = {:.1}% of first  peak RSS {rss2:.0} MiB", 100.0 * warm / first);
    println!("  kiln convert A->A (mounts, cold)   {same:8.2} s  = {:.2}x skopeo  peak RSS {rss3:.0} MiB", same / skopeo);
    Ok(())
}

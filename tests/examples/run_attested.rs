//! Runs a converted MANAGER_CA image under runc as if in SGX with remote attestation, for
//! the worker's end-to-end test (worker/test/manager-e2e.test.mjs): the fixture loader in
//! direct mode (`KILN_INSECURE_NO_SGX=1`), `/dev/attestation` played by
//! `kiln_tests::attestation_standin` (TEST-root quotes with the conversion's MRENCLAVE and
//! MRSIGNER over the report data kiln-init writes), and the container in the host's network
//! namespace so that kiln-init reaches the worker on the host's loopback.
//!
//! ```sh
//! run_attested check                 # {"ready":true} or {"skipped":"why"} (root, runc, ...)
//! run_attested push-input HOST:PORT  # pushes HOST:PORT/sample/busybox-root:1 (plain HTTP):
//!                                    # busybox as root whose app prints /data/tls/cert.pem
//! run_attested run --image REF --pki DIR --mrenclave HEX --mrsigner HEX \
//!   [--isv-prod-id N] [--isv-svn N] [--timeout-secs 120]
//! ```
//!
//! `run` pulls REF (plain HTTP registry) into a fresh bundle, runs it to its end and prints
//! one JSON line: `{"exit" (code; null if killed by a signal; {"timedOut": secs}), "stdout", "stderr", "initJson" (the
//! image's /opt/kiln/init.json), "served": [{"reportData": hex} | {"failed": why}]}`. It
//! exits 0 whatever the container did; the caller judges. Needs root, skopeo, umoci, runc,
//! mkfifo and /bin/busybox (busybox-static).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::attestation_standin::{AttestationStandIn, Served};
use kiln_tests::images::push_image;
use kiln_tests::runc::{
    bind_mount, pull_and_unpack, runc_unavailable, share_host_network, Container,
};
use kiln_tests::sample_images::busybox_image;
use kiln_tests::test_quotes::{QuoteSpec, TestPki};
use kiln_tests::HarnessError;

/// Where the input image's app expects the certificate chain (under `encryptedDirs`
/// `/data` in the test's conversion request).
const CERT_PATH: &str = "/data/tls/cert.pem";

fn print(v: &serde_json::Value) -> Result<(), HarnessError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

fn unavailable() -> Option<String> {
    runc_unavailable(&["skopeo", "umoci", "runc", "mkfifo"]).or_else(|| {
        (!std::path::Path::new("/bin/busybox").exists())
            .then(|| "/bin/busybox (busybox-static) is missing".to_string())
    })
}

fn hex_bytes<const N: usize>(flag: &str, v: &str) -> Result<[u8; N], HarnessError> {
    let b = hex::decode(v.trim()).map_err(|e| format!("{flag}: {e}"))?;
    <[u8; N]>::try_from(b.as_slice())
        .map_err(|_| format!("{flag}: expected {N} bytes of hex, got {}", b.len()).into())
}

async fn push_input(host: &str) -> Result<(), HarnessError> {
    let mut image = busybox_image()?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&image.config.data)?;
    let script = format!("echo app-started; cat {CERT_PATH}");
    cfg["config"]["User"] = serde_json::json!("0:0");
    cfg["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", script]);
    cfg["config"]["Cmd"] = serde_json::json!([]);
    image.set_config(&cfg)?;
    let client = RegistryClient::new(
        Arc::new(HttpTransport::new()?),
        host,
        ClientOptions {
            insecure: true,
            credentials: None,
        },
    );
    let d = push_image(
        &client,
        "sample/busybox-root",
        &image,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    print(&serde_json::json!({
        "pushed": format!("{host}/sample/busybox-root:1"),
        "digest": d.to_string(),
        "certPath": CERT_PATH,
    }))
}

fn run(args: &mut dyn Iterator<Item = String>) -> Result<(), HarnessError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut image = None;
    let mut pki_dir: Option<PathBuf> = None;
    let mut spec = QuoteSpec::new(now, [0; 32], [0; 32], [0; 64]);
    let mut timeout = Duration::from_secs(120);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => image = Some(val()?),
            "--pki" => pki_dir = Some(PathBuf::from(val()?)),
            "--mrenclave" => spec.mrenclave = hex_bytes(&flag, &val()?)?,
            "--mrsigner" => spec.mrsigner = hex_bytes(&flag, &val()?)?,
            "--isv-prod-id" => spec.isv_prod_id = val()?.parse()?,
            "--isv-svn" => spec.isv_svn = val()?.parse()?,
            "--timeout-secs" => timeout = Duration::from_secs(val()?.parse()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let image = image.ok_or("--image is required")?;
    let pki_dir = pki_dir.ok_or("--pki is required (the directory mint_quote --pki uses)")?;
    if let Some(why) = unavailable() {
        return print(&serde_json::json!({ "skipped": why }));
    }
    let pki = TestPki::load(&pki_dir)?;
    let work = tempfile::tempdir()?;
    let bundle = pull_and_unpack(&image, work.path(), "attested")?;
    let init_json = std::fs::read(bundle.join("rootfs/opt/kiln/init.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let mut standin = AttestationStandIn::start(&work.path().join("attestation"), pki, spec)?;
    share_host_network(&bundle)?;
    bind_mount(&bundle, standin.dir(), "/dev/attestation")?;
    let mut c = Container::new(&bundle, "attested", &["KILN_INSECURE_NO_SGX=1"])?;
    let status = c.start().and_then(|()| c.wait(timeout));
    let (stdout, stderr) = (c.stdout(), c.stderr());
    drop(c);
    let served: Vec<serde_json::Value> = standin
        .stop()
        .into_iter()
        .map(|s| match s {
            Served::Quote { report_data, .. } => {
                serde_json::json!({ "reportData": hex::encode(report_data) })
            }
            Served::Failed(why) => serde_json::json!({ "failed": why }),
        })
        .collect();
    let exit = match status? {
        Some(st) => serde_json::json!(st.code()),
        None => serde_json::json!({ "timedOut": timeout.as_secs() }),
    };
    print(&serde_json::json!({
        "exit": exit,
        "stdout": stdout,
        "stderr": stderr,
        "initJson": init_json,
        "served": served,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("check") => print(&match unavailable() {
            None => serde_json::json!({ "ready": true }),
            Some(why) => serde_json::json!({ "skipped": why }),
        }),
        Some("push-input") => {
            let host = args.next().ok_or("usage: run_attested push-input HOST:PORT")?;
            push_input(&host).await
        }
        Some("run") => tokio::task::block_in_place(|| run(&mut args)),
        _ => Err("usage: run_attested check | push-input HOST:PORT | run --image REF --pki DIR --mrenclave HEX --mrsigner HEX [...]".into()),
    }
}

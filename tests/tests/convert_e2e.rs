//! End to end on loopback: a busybox image (Debian's static busybox, packed by the
//! harness) in a local registry is converted registry to registry by `kiln convert`
//! (the CLI binary, over the engine pipeline) with the fixture runtime image (synthetic
//! PAL, fixture loader standing in for Gramine, the real static launcher). The output is
//! pulled with skopeo, unpacked with umoci and run with runc: without SGX the launcher
//! refuses in one line; with `KILN_INSECURE_NO_SGX=1` the app's argv, environment,
//! working directory and user equal those of the original image run the same way.
//!
//! Needs root, docker-registry, skopeo, umoci, runc and /bin/busybox (busybox-static);
//! skips loudly otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_engine::api::ConvertResponse;
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::UploadMode;
use kiln_tests::cli::kiln_bin;
use kiln_tests::images::push_image;
use kiln_tests::registry::TestRegistry;
use kiln_tests::runc::{pull_and_unpack, run_ok as run, runc_tests_can_run};
use kiln_tests::runtime_fixture::{push_fixture_runtime, runtime_image, RuntimeBinaries};
use kiln_tests::sample_images::{busybox_image, push_busybox};
use kiln_tests::{require_tool, HarnessError};

/// What every runc test here needs.
const RUNC_TOOLS: &[&str] = &["docker-registry", "skopeo", "umoci", "runc"];

/// Whether the busybox runc tests can run: root, [`RUNC_TOOLS`] and /bin/busybox
/// (busybox-static). Otherwise a loud skip, or a failure under `KILN_REQUIRE_RUNC=1`.
fn busybox_runc_can_run() -> bool {
    if !runc_tests_can_run("convert_e2e (busybox)", RUNC_TOOLS) {
        return false;
    }
    if Path::new("/bin/busybox").exists() {
        return true;
    }
    let why = "/bin/busybox (busybox-static, scripts/install-deps.sh) is missing";
    if std::env::var("KILN_REQUIRE_RUNC").as_deref() == Ok("1") {
        panic!("runc tests required (KILN_REQUIRE_RUNC=1) but {why}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
    false
}

/// Runs a bundle with runc (no terminal, umoci's namespaces: no network), with extra env.
fn runc(bundle: &Path, id: &str, extra_env: &[&str]) -> Result<Output, HarnessError> {
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    cfg["process"]["terminal"] = serde_json::json!(false);
    if let Some(env) = cfg["process"]["env"].as_array_mut() {
        env.extend(extra_env.iter().map(|e| serde_json::json!(e)));
    }
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    let state = bundle.join("runc-state");
    let out = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .output()?;
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", id])
        .output();
    Ok(out)
}

/// The app's report, without what the container runtime adds on its own.
/// Pulls and unpacks `original` and `converted` into `work` and runs the original under
/// runc (container `id`), which must succeed. Returns the converted image's bundle and
/// the original's [`report`].
fn pull_and_run_original(
    original: &str,
    converted: &str,
    work: &Path,
    id: &str,
) -> Result<(PathBuf, Vec<String>), HarnessError> {
    let original = pull_and_unpack(original, work, "orig")?;
    let converted = pull_and_unpack(converted, work, "conv")?;
    let o = runc(&original, id, &[])?;
    assert!(
        o.status.success(),
        "original: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want = report(&o);
    eprintln!("original image reports:\n{}", want.join("\n"));
    Ok((converted, want))
}

fn report(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with("env=TERM=") && !l.starts_with("env=HOSTNAME="))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_converted_runs_like_the_original() -> Result<(), HarnessError> {
    if !busybox_runc_can_run() {
        return Ok(());
    }
    let a = TestRegistry::plain()?;
    let b = TestRegistry::plain()?;
    let ca = a.client(None)?;
    push_busybox(&ca, "busybox").await?;
    push_fixture_runtime(&ca, &RuntimeBinaries::build()?).await?;

    let work = tempfile::tempdir()?;
    let state = work.path().join("state");
    let kiln = kiln_bin()?;
    let convert = |extra: &[&str]| -> Result<(ConvertResponse, String), HarnessError> {
        let mut c = Command::new(&kiln);
        c.args(["convert", "--input"])
            .arg(format!("{}/busybox:1", a.host()))
            .arg("--output")
            .arg(format!("{}/busybox-sgx:1", b.host()))
            .arg("--runtime")
            .arg(format!("{}/kiln/runtime:fixture", a.host()))
            .args([
                "--insecure-registry",
                &a.host(),
                "--insecure-registry",
                &b.host(),
            ])
            .arg("--state-dir")
            .arg(&state)
            .args(extra)
            .env_remove("SOURCE_DATE_EPOCH");
        let o = run(&mut c)?;
        Ok((
            serde_json::from_slice(&o.stdout)?,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ))
    };
    let (resp, log1) = convert(&[])?;
    assert!(log1.contains("scanned"), "{log1}");

    // The response says what the labels say.
    let cb = b.client(None)?;
    let m = cb.get_manifest("busybox-sgx", "1").await?;
    assert_eq!(m.digest().to_string(), resp.digest);
    let im = m.image_manifest()?;
    let cfg_digest = Digest::try_from(im.config().digest())?;
    let cfg = cb
        .get_blob_bytes("busybox-sgx", &cfg_digest, 1 << 20)
        .await?;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg)?;
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["dev.kiln.mrenclave"], resp.mrenclave.as_str());
    assert_eq!(labels["dev.kiln.mrenclave2"], resp.mrenclave2.as_str());
    assert_eq!(labels["dev.kiln.mrsigner"], resp.mrsigner.as_str());
    assert_eq!(resp.image_sha, cfg_digest.hex()[..12]);

    // Second run, warm cache, same state dir: same digest, no layer fetched.
    let (resp2, log2) = convert(&[])?;
    assert_eq!(resp2, resp);
    assert!(
        !log2.contains("MiB read") && !log2.contains("scanned"),
        "{log2}"
    );
    assert_eq!(log2.matches("files, cached").count(), 2, "{log2}");
    assert!(
        !log2.contains("copied") && !log2.contains("uploaded"),
        "{log2}"
    );

    // Run both images.
    let (converted, want) = pull_and_run_original(
        &format!("{}/busybox:1", a.host()),
        &format!("{}/busybox-sgx:1", b.host()),
        work.path(),
        "kiln-e2e-orig",
    )?;
    assert!(want.contains(&"arg=first arg".to_string()), "{want:?}");
    assert!(want.contains(&"ids=1000:1000".to_string()), "{want:?}");
    assert!(want.contains(&"cwd=/work".to_string()), "{want:?}");

    let refused = runc(&converted, "kiln-e2e-nosgx", &[])?;
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    eprintln!("without SGX: {err}");

    let ran = runc(&converted, "kiln-e2e-direct", &["KILN_INSECURE_NO_SGX=1"])?;
    assert!(
        ran.status.success(),
        "converted: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(report(&ran), want);
    Ok(())
}

/// A Debian bookworm minbase root filesystem as a gzip layer: the real-app `bash` image's
/// (scripts/build-real-app-images.sh: debootstrap from the machine's apt mirror, cached
/// outside the clone by recipe hash and shared with tests/real_apps.rs).
fn debian_layer() -> Result<Option<(Vec<u8>, String)>, HarnessError> {
    let built = match kiln_tests::real_apps::build_cached(&["bash"]) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("\n!!!!!!!! building the Debian image FAILED; skipping the Debian case only !!!!!!!!\n{e}");
            return Ok(None);
        }
    };
    let (_, dir) = built
        .first()
        .ok_or("build-real-app-images.sh built nothing")?;
    Ok(Some((
        std::fs::read(dir.join("layer.tar.gz"))?,
        std::fs::read_to_string(dir.join("diff_id"))?
            .trim()
            .to_string(),
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_minbase_converted_runs_like_the_original() -> Result<(), HarnessError> {
    use kiln_engine::image::manifest::OCI_LAYER_GZIP;
    use kiln_tests::images::Blob;
    if !runc_tests_can_run(
        "debian_minbase_converted_runs_like_the_original",
        &[RUNC_TOOLS, &["debootstrap"]].concat(),
    ) {
        return Ok(());
    }
    let Some((layer, diff_id)) = debian_layer()? else {
        return Ok(());
    };
    let layer = Blob::new(OCI_LAYER_GZIP, layer);
    let script = "echo \"argv0=$0\"; for a in \"$@\"; do echo \"arg=$a\"; done; env | sort | sed 's/^/env=/'; echo \"cwd=$(pwd)\"; echo \"ids=$(id -u):$(id -g)\"";
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-06-01T00:00:00Z",
        "config": {
            "Cmd": ["/bin/bash", "-c", script, "report", "one two", "-x"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "WorkingDir": "/usr/share",
            "User": "nobody",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let image = kiln_tests::real_apps::one_layer_image(layer, &cfg)?;
    let a = TestRegistry::plain()?;
    let ca = a.client(None)?;
    push_image(
        &ca,
        "debian",
        &image,
        Some("bookworm"),
        UploadMode::Monolithic,
    )
    .await?;
    push_fixture_runtime(&ca, &RuntimeBinaries::build()?).await?;

    // Through the engine directly (the busybox case goes through the CLI).
    let mut env = kiln_tests::runtime_fixture::test_pipeline_env(
        a.transport()?,
        format!("{}/kiln/runtime:fixture", a.host()),
        &a.host(),
    )?;
    env.scans = std::sync::Arc::new(kiln_native::ThreadedScans::default());
    let req = kiln_engine::api::ConvertRequest {
        input_image_name: format!("{}/debian:bookworm", a.host()),
        output_image_name: format!("{}/debian-sgx:bookworm", a.host()),
        ..Default::default()
    };
    let out = kiln_engine::pipeline::convert(req, &env).await?;
    eprintln!("{}", serde_json::to_string_pretty(&out.response)?);

    let work = tempfile::tempdir()?;
    let (converted, want) = pull_and_run_original(
        &format!("{}/debian:bookworm", a.host()),
        &format!("{}/debian-sgx:bookworm", a.host()),
        work.path(),
        "kiln-e2e-deb-orig",
    )?;
    assert!(want.contains(&"ids=65534:65534".to_string()), "{want:?}");
    let refused = runc(&converted, "kiln-e2e-deb-nosgx", &[])?;
    assert!(!refused.status.success());
    let ran = runc(
        &converted,
        "kiln-e2e-deb-direct",
        &["KILN_INSECURE_NO_SGX=1"],
    )?;
    assert!(
        ran.status.success(),
        "converted: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(report(&ran), want);

    // The trusted-file set, checked independently of kiln's scanner on the rootfs that
    // umoci unpacked: every listed file has the listed hash, and every regular file of the
    // image outside the excluded places is listed.
    check_trusted_files(&converted.join("rootfs"))?;
    Ok(())
}

/// Places that are not trusted files by design: kiln's own files, the pseudo-filesystems
/// Gramine provides, the default encrypted dirs (and their host side) and the default rw files.
const NOT_TRUSTED: &[&str] = &[
    "/opt/kiln",
    "/opt/fortanix/enclave-os",
    "/dev",
    "/proc",
    "/sys",
    "/tmp",
    "/run",
    "/ftx-efs",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/hostname",
];

fn excluded(path: &str) -> bool {
    NOT_TRUSTED
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Checks the SGX1 manifest's `sgx.trusted_files` against an unpacked rootfs.
fn check_trusted_files(rootfs: &Path) -> Result<(), HarnessError> {
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    let text = std::fs::read_to_string(rootfs.join("opt/kiln/sgx1/app.manifest.sgx"))?;
    let manifest: toml::Table = toml::from_str(&text)?;
    let listed: BTreeMap<String, String> = manifest["sgx"]["trusted_files"]
        .as_array()
        .ok_or("no sgx.trusted_files")?
        .iter()
        .filter_map(|t| {
            let uri = t.get("uri")?.as_str()?.strip_prefix("file:")?.to_string();
            Some((uri, t.get("sha256")?.as_str()?.to_string()))
        })
        .collect();
    assert!(listed.len() > 1000, "only {} trusted files", listed.len());
    // 1. Every listed file (the LibOS lives in the runtime layer) has the listed hash; the
    //    path is opened as the app would, following symlinks inside the rootfs.
    for (path, sha) in &listed {
        let real = resolve_in_root(rootfs, path)?;
        let bytes = std::fs::read(&real).map_err(|e| format!("{path}: {e}"))?;
        assert_eq!(&hex::encode(Sha256::digest(&bytes)), sha, "hash of {path}");
    }
    // 2. Every regular file of the image (walked without following links) is listed.
    let mut missing = Vec::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let abs = format!("/{}", entry.path().strip_prefix(rootfs)?.display());
            if excluded(&abs) {
                continue;
            }
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && !listed.contains_key(&abs) {
                missing.push(abs);
            }
        }
    }
    assert!(missing.is_empty(), "regular files not trusted: {missing:?}");
    eprintln!(
        "trusted files checked: {} listed, all hashes match, none missing",
        listed.len()
    );
    Ok(())
}

/// `path` inside `root`, following symlinks (absolute ones relative to `root`), never
/// leaving it.
fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, HarnessError> {
    let mut parts: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    while !parts.is_empty() {
        let c = parts.remove(0);
        if c == ".." {
            done.pop();
            continue;
        }
        if c == "." {
            continue;
        }
        let candidate = done.join(&c);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("{path}: too many symlinks").into());
                }
                let target = std::fs::read_link(&full)?;
                let t = target.to_string_lossy().to_string();
                let mut rest: Vec<String> = t
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect();
                if t.starts_with('/') {
                    done = PathBuf::new();
                }
                rest.append(&mut parts);
                parts = rest;
            }
            _ => done = candidate,
        }
    }
    Ok(root.join(done))
}

/// Certificates through kiln-init, under runc with the fixture loader (direct mode): a
/// root busybox whose app prints the certificate kiln-init wrote under an encrypted dir
/// before exec'ing it with the original argv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_with_a_certificate_gets_it_before_the_app_starts() -> Result<(), HarnessError> {
    certificate_case(None).await
}

/// The same under real Gramine: the runtime image is packed by `kiln runtime pack` from the
/// Gramine install at `KILN_TEST_GRAMINE_PREFIX` (default /opt/gramine), and the launcher
/// starts Gramine's direct-mode PAL, whose LibOS runs kiln-init and then busybox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Gramine install (KILN_TEST_GRAMINE_PREFIX, default /opt/gramine) and patchelf"]
async fn busybox_with_a_certificate_under_gramine_direct() -> Result<(), HarnessError> {
    let prefix =
        std::env::var("KILN_TEST_GRAMINE_PREFIX").unwrap_or_else(|_| "/opt/gramine".into());
    if !Path::new(&prefix).is_dir() {
        eprintln!("\n!!!!!!!! SKIPPED: no Gramine install at {prefix} !!!!!!!!\n");
        return Ok(());
    }
    certificate_case(Some(Path::new(&prefix))).await
}

async fn certificate_case(gramine: Option<&Path>) -> Result<(), HarnessError> {
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    use sha2::{Digest as _, Sha256};
    use x509_cert::der::{DecodePem as _, Encode as _};
    if !busybox_runc_can_run() {
        return Ok(());
    }
    // The busybox sample, run as root, its app printing the certificate.
    let mut image = busybox_image()?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&image.config.data)?;
    let script = "cat /data/tls/cert.pem; echo \"argv0=$0 arg=$1\"; ls -ln /data/tls/key.pem";
    cfg["config"]["User"] = serde_json::json!("0:0");
    cfg["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", script, "report"]);
    cfg["config"]["Cmd"] = serde_json::json!(["first"]);
    image.set_config(&cfg)?;
    let a = TestRegistry::plain()?;
    let ca = a.client(None)?;
    push_image(
        &ca,
        "busybox-root",
        &image,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    let runtime = match gramine {
        None => {
            let rt = runtime_image(&RuntimeBinaries::build()?)?;
            push_image(
                &ca,
                "kiln/runtime",
                &rt,
                Some("fixture"),
                UploadMode::Monolithic,
            )
            .await?;
            format!("{}/kiln/runtime:fixture", a.host())
        }
        Some(prefix) => kiln_tests::runtime_fixture::pack_gramine_runtime(prefix, &a.host())?,
    };
    let env = kiln_tests::runtime_fixture::test_pipeline_env(a.transport()?, runtime, &a.host())?;
    let body = serde_json::json!({
        "inputImageName": format!("{}/busybox-root:1", a.host()),
        "outputImageName": format!("{}/busybox-root-sgx:1", a.host()),
        "encryptedDirs": ["/data"],
        "certificates": [{
            "issuer": "NODE", "subject": "e2e.kiln.test", "keyType": "RSA",
            "keyParam": {"size": 3072},
            "keyPath": "/data/tls/key.pem", "certPath": "/data/tls/cert.pem",
        }],
    });
    let req = kiln_engine::api::parse_request(body.to_string().as_bytes()).map_err(|e| e.reason)?;
    let out = kiln_engine::pipeline::convert(req, &env).await?;
    let warnings = out.response.warnings.join("\n");
    assert!(warnings.contains("self-signed"), "{warnings}");
    assert!(
        warnings.contains("certificates[0].issuer NODE"),
        "{warnings}"
    );

    let work = tempfile::tempdir()?;
    let converted = pull_and_unpack(
        &format!("{}/busybox-root-sgx:1", a.host()),
        work.path(),
        "conv",
    )?;
    // kiln-init is the enclave's entrypoint and a trusted file with its real hash.
    let rootfs = converted.join("rootfs");
    let text = std::fs::read_to_string(rootfs.join("opt/kiln/sgx1/app.manifest.sgx"))?;
    let manifest: toml::Table = toml::from_str(&text)?;
    assert_eq!(
        manifest["libos"]["entrypoint"].as_str(),
        Some("/opt/kiln/runtime/kiln-init")
    );
    assert_eq!(manifest["sgx"]["remote_attestation"].as_str(), Some("dcap"));
    for path in ["/opt/kiln/runtime/kiln-init", "/opt/kiln/init.json"] {
        let listed = manifest["sgx"]["trusted_files"]
            .as_array()
            .ok_or("no trusted files")?
            .iter()
            .find(|t| t["uri"].as_str() == Some(&format!("file:{path}")))
            .and_then(|t| t["sha256"].as_str())
            .ok_or(format!("{path} is not a trusted file"))?;
        let real = std::fs::read(rootfs.join(path.trim_start_matches('/')))?;
        assert_eq!(listed, hex::encode(Sha256::digest(&real)), "{path}");
    }

    let ran = runc(&converted, "kiln-e2e-certs", &["KILN_INSECURE_NO_SGX=1"])?;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    eprintln!("converted app printed:\n{stdout}\nstderr:\n{stderr}");
    // Gramine sends the enclave's stderr to the host's stdout (its console), the fixture
    // loader leaves it on stderr.
    let both = format!("{stdout}{stderr}");
    assert!(
        both.contains("kiln-init: /dev/attestation is not available")
            && both.contains("no SGX quote"),
        "{both}"
    );
    let (pem, rest) = stdout
        .split_once("-----END CERTIFICATE-----\n")
        .ok_or("no certificate printed")?;
    let pem = &pem[pem
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("no certificate printed")?..];
    assert!(rest.starts_with("argv0=report arg=first\n"), "{rest}");
    assert!(rest.contains("-rw-------"), "key mode: {rest}");
    let cert = x509_cert::Certificate::from_pem(format!("{pem}-----END CERTIFICATE-----\n"))?;
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.subject().to_string(), "CN=e2e.kiln.test");
    let spki = tbs.subject_public_key_info().to_der()?;
    let key = rsa::PublicKey::from_public_key_der(&spki)?;
    assert_eq!(key.size() * 8, 3072);
    Ok(())
}

/// A runtime image without kiln-init (packed before it existed) still converts requests
/// without certificates; with certificates the conversion fails naming the runtime image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_need_a_runtime_with_kiln_init() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    if !Path::new("/bin/busybox").exists() {
        eprintln!("\n!!!!!!!! SKIPPED: needs /bin/busybox (busybox-static) !!!!!!!!\n");
        return Ok(());
    }
    let a = TestRegistry::plain()?;
    let ca = a.client(None)?;
    push_busybox(&ca, "busybox").await?;
    let old = RuntimeBinaries {
        init: Vec::new(),
        ..RuntimeBinaries::placeholders()
    };
    push_image(
        &ca,
        "kiln/runtime",
        &runtime_image(&old)?,
        Some("old"),
        UploadMode::Monolithic,
    )
    .await?;
    let runtime = format!("{}/kiln/runtime:old", a.host());
    let mut env = kiln_engine::pipeline::PipelineEnv::new(a.transport()?, runtime.clone());
    env.registry = env.registry.with_insecure(&a.host());
    env.default_signer = Some(std::sync::Arc::new(
        kiln_engine::sgx::signer::PrivateKeySigner::from_pem(
            include_str!("../../engine/testdata/gramine/test-key.pem"),
            None,
        )?,
    ));
    let request = |certs: bool| {
        let mut body = serde_json::json!({
            "inputImageName": format!("{}/busybox:1", a.host()),
            "outputImageName": format!("{}/busybox-sgx:1", a.host()),
        });
        if certs {
            body["certificates"] = serde_json::json!([{
                "subject": "x.test", "keyPath": "/tmp/k.pem", "certPath": "/tmp/c.pem",
            }]);
        }
        kiln_engine::api::parse_request(body.to_string().as_bytes())
    };
    let err = kiln_engine::pipeline::convert(request(true).map_err(|e| e.reason)?, &env)
        .await
        .err()
        .ok_or("a conversion with certificates succeeded without kiln-init")?;
    assert!(
        err.reason.contains(&runtime)
            && err
                .reason
                .contains("lacks kiln-init; repack it with `kiln runtime pack`"),
        "{}",
        err.reason
    );
    let ok = kiln_engine::pipeline::convert(request(false).map_err(|e| e.reason)?, &env).await?;
    assert!(!ok.response.warnings.iter().any(|w| w.contains("kiln-init")));
    Ok(())
}

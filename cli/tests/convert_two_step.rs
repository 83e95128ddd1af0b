//! `kiln convert --prepare` / `--complete` against a loopback registry: the payloads signed
//! with `openssl dgst` give the image `kiln convert --key` gives; a bad signature is refused
//! and leaves no tag.

use std::path::Path;
use std::process::{Command, Output};

use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::push_busybox;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const KEY: &str = "../engine/testdata/gramine/test-key.pem";

fn kiln(args: &[&str], state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("DOCKER_CONFIG", state.join("docker"))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kiln")
}

fn ok(out: &Output) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn openssl_sign(payload: &Path, sig: &Path) {
    let st = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", KEY, "-out"])
        .arg(sig)
        .arg(payload)
        .status()
        .expect("run openssl");
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_sign_with_openssl_complete() -> R {
    require_tool!("docker-registry");
    require_tool!("openssl");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let h = reg.host();
    push_busybox(&client, "sample/busybox").await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let d = tempfile::tempdir()?;
    let state = d.path().join("state");
    let runtime = format!("{h}/kiln/runtime:fixture");
    let input = format!("{h}/sample/busybox:1");
    let output = format!("{h}/out/two:1");
    let common = [
        "--runtime",
        &runtime,
        "--insecure-registry",
        &h,
        "--state-dir",
        state.to_str().ok_or("path")?,
        "--no-bars",
    ];
    let prep = d.path().join("prep.json");
    let mut args = vec!["convert", "--input", &input, "--output", &output];
    args.extend(common);
    let prep_s = prep.to_str().ok_or("path")?;
    let mut p_args = args.clone();
    p_args.extend(["--prepare", prep_s]);
    let summary = ok(&kiln(&p_args, d.path()))?;
    assert_eq!(summary["mrenclave"].as_str().map(str::len), Some(64));
    assert!(client.head_manifest("out/two", "1").await?.is_none());

    // Public key and signatures made with openssl.
    let pubkey = d.path().join("pub.pem");
    let st = Command::new("openssl")
        .args(["pkey", "-in", KEY, "-pubout", "-out"])
        .arg(&pubkey)
        .status()?;
    assert!(st.success());
    let (s1, s2) = (d.path().join("s1.bin"), d.path().join("s2.bin"));
    openssl_sign(Path::new(&format!("{prep_s}.sgx1.bin")), &s1);
    openssl_sign(Path::new(&format!("{prep_s}.edmm.bin")), &s2);
    let mut c = vec!["convert", "--complete", prep_s, "--public-key"];
    let pk = pubkey.to_str().ok_or("path")?;
    c.push(pk);
    c.extend(common);

    // Swapped signatures: refused, naming the SGX1 one; no tag.
    let (s1s, s2s) = (s1.to_str().ok_or("path")?, s2.to_str().ok_or("path")?);
    let mut bad = c.clone();
    bad.extend(["--sgx1-signature", s2s, "--edmm-signature", s1s]);
    let out = kiln(&bad, d.path());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signatures.sgx1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(client.head_manifest("out/two", "1").await?.is_none());

    let mut good = c.clone();
    good.extend(["--sgx1-signature", s1s, "--edmm-signature", s2s]);
    let two = ok(&kiln(&good, d.path()))?;
    assert_eq!(two["mrenclave"], summary["mrenclave"]);
    assert!(client.head_manifest("out/two", "1").await?.is_some());

    // One step with the same key: the same image.
    let mut one = args.clone();
    one.extend(["--key", KEY]);
    let one = ok(&kiln(&one, d.path()))?;
    assert_eq!(one["digest"], two["digest"]);
    assert_eq!(one["mrsigner"], two["mrsigner"]);
    Ok(())
}

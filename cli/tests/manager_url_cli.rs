//! `kiln convert --manager-url URL` (MANAGER_CA, issue #18): a bad URL is refused before
//! anything is read, naming the flag; a conversion with a MANAGER_CA certificate against a
//! real plain-HTTP docker-registry warns that kiln-init asks that manager at start-up, and
//! without the flag keeps the self-signed warning. The MRENCLAVE differs (the URL is
//! measured in init.json).

mod common;
use common::text;
use std::path::Path;
use std::process::Output;

use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::push_busybox;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn kiln(args: &[String], home: &Path) -> Output {
    common::kiln_in(args, home)
}

#[test]
fn a_bad_manager_url_is_refused_naming_the_flag() {
    let d = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "convert",
        "--input",
        "127.0.0.1:9/none:1",
        "--output",
        "127.0.0.1:9/out:1",
        "--manager-url",
        "https://user:secret@kiln.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = kiln(&args, d.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--manager-url: must not contain userinfo"),
        "{}",
        text(&out)
    );
    assert!(!err.contains("secret"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_url_is_measured_and_named_in_the_warning() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let h = reg.host();
    push_busybox(&client, "sample/busybox").await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let d = tempfile::tempdir()?;
    let request = d.path().join("request.json");
    std::fs::write(
        &request,
        serde_json::json!({
            "inputImageName": format!("{h}/sample/busybox:1"),
            "outputImageName": format!("{h}/out/managed:1"),
            "encryptedDirs": ["/data"],
            "certificates": [{"issuer": "MANAGER_CA", "subject": "app.example.com",
                              "keyPath": "/data/k.pem", "certPath": "/data/c.pem"}],
        })
        .to_string(),
    )?;
    let state = d.path().join("state");
    let convert = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "convert".into(),
            "--request".into(),
            request.display().to_string(),
            "--runtime".into(),
            format!("{h}/kiln/runtime:fixture"),
            "--insecure-registry".into(),
            h.clone(),
            "--state-dir".into(),
            state.display().to_string(),
            "--no-bars".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let home = d.path().to_path_buf();
        tokio::task::spawn_blocking(move || kiln(&args, &home))
    };
    let url = "https://kiln.example/";
    let with = convert(&["--manager-url", url]).await?;
    assert_eq!(with.status.code(), Some(0), "{}", text(&with));
    let with: serde_json::Value = serde_json::from_slice(&with.stdout)?;
    let warnings = with["warnings"].to_string();
    assert!(
        warnings.contains("certificates[0].issuer MANAGER_CA: kiln-init requests the certificate from the manager at https://kiln.example/ at start-up"),
        "{warnings}"
    );

    let without = convert(&[]).await?;
    assert_eq!(without.status.code(), Some(0), "{}", text(&without));
    let without: serde_json::Value = serde_json::from_slice(&without.stdout)?;
    let w2 = without["warnings"].to_string();
    assert!(
        w2.contains("certificates[0].issuer MANAGER_CA: this conversion names no manager (kiln convert --manager-url, or a worker with KILN_MANAGER_CA_KEY); the certificate is self-signed"),
        "{w2}"
    );
    assert_ne!(with["mrenclave"], without["mrenclave"], "{with}\n{without}");
    Ok(())
}

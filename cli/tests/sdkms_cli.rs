//! `kiln convert` signing with a Fortanix DSM key (`--sdkms-key`, `--kms-url`, the API key
//! from `$KILN_SDKMS_API_KEY` or the request file) against the stand-in DSM and a real
//! registry on loopback.

use std::process::{Command, Output};

use kiln_engine::image::registry::UploadMode;
use kiln_tests::dsm_server::DsmServer;
use kiln_tests::images::push_image;
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::shell_app_image;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn kiln(args: Vec<String>, api_key: Option<&str>, state: &std::path::Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("convert")
        .args(args)
        .arg("--no-bars")
        .arg("--state-dir")
        .arg(state)
        .env_remove("KILN_SDKMS_API_KEY")
        .env_remove("KILN_KMS_URL");
    if let Some(k) = api_key {
        c.env("KILN_SDKMS_API_KEY", k);
    }
    c.output().expect("run kiln")
}

#[tokio::test(flavor = "current_thread")]
async fn convert_with_a_dsm_key() -> R {
    require_tool!("docker-registry");
    let dsm = DsmServer::start()?;
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let app = shell_app_image("cli")?;
    push_image(&client, "app", &app, Some("1"), UploadMode::Monolithic).await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let host = reg.host();
    let state = tempfile::tempdir()?;
    let common = |tag: &str| -> Vec<String> {
        [
            "--input",
            &format!("{host}/app:1"),
            "--output",
            &format!("{host}/app-sgx:{tag}"),
            "--runtime",
            &format!("{host}/kiln/runtime:fixture"),
            "--insecure-registry",
            &host,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let url = dsm.url();

    // --sdkms-key with the API key from the environment.
    let mut args = common("1");
    args.extend(["--sdkms-key".into(), DsmServer::SGX_KEY.into()]);
    args.extend(["--kms-url".into(), url.clone()]);
    let (a, st) = (args.clone(), state.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || kiln(a, Some(DsmServer::API_KEY), &st)).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["mrsigner"], dsm.sgx_mrsigner_hex());
    // No default key was generated for an sdkms conversion.
    assert!(!state.path().join("keys/default.pem").exists());

    // A request file naming sdkms, a wrong API key: 401 JSON on stdout, key never printed.
    let wrong = "d3JvbmctY2xpOndyb25nLXNlY3JldC03ODk=";
    let req = state.path().join("req.json");
    std::fs::write(
        &req,
        serde_json::json!({
            "inputImageName": format!("{host}/app:1"),
            "outputImageName": format!("{host}/app-sgx:2"),
            "signingKey": {"sdkms": {"name": DsmServer::SGX_KEY, "apiKey": wrong}},
        })
        .to_string(),
    )?;
    let mut args: Vec<String> = vec!["--request".into(), req.display().to_string()];
    args.extend(common("2").into_iter().skip(4));
    args.extend(["--kms-url".into(), url]);
    let (a, st) = (args.clone(), state.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || kiln(a, None, &st)).await?;
    assert_ne!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("\"Unauthorized\""), "{stdout}\n{stderr}");
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong));

    // --sdkms-key without the API key, or without --kms-url: refused up front.
    let mut args = common("3");
    args.extend(["--sdkms-key".into(), DsmServer::SGX_KEY.into()]);
    let (a, st) = (args.clone(), state.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || kiln(a, Some(DsmServer::API_KEY), &st)).await?;
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kms-url"));
    let (a, st) = (args, state.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || kiln(a, None, &st)).await?;
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KILN_SDKMS_API_KEY"));
    assert_eq!(dsm.signatures(), 2);
    Ok(())
}

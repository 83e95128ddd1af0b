//! The messages a newcomer meets first (issue #17), from the real `kiln` binary: the
//! `--insecure-registry` hint against a real plain-HTTP docker-registry, `inspect` of an
//! image kiln did not convert, `verify` usage errors (exit 1, not 2) and hex expectations,
//! `runtime pack --help`, no default key left by a conversion that fails before signing;
//! and `kiln convert` from and to OCI layouts (`oci:DIR[:TAG]`), read back by skopeo.

mod common;
use common::text;
use std::path::Path;
use std::process::{Command, Output};

use kiln_tests::images::{simple_image, write_oci_layout, ImageFormat};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::push_busybox;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn kiln(args: &[&str], home: &Path) -> Output {
    common::kiln_in(args, home)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_registry_without_the_flag_gets_the_hint() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let d = tempfile::tempdir()?;
    let host = reg.host();
    let image = format!("{host}/sample/busybox:1");
    let home = d.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || kiln(&["inspect", &image], &home)).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("kiln: hint:"), "{}", text(&out));
    assert!(
        err.contains(&format!("--insecure-registry {host} ")),
        "{}",
        text(&out)
    );
    Ok(())
}

#[test]
fn inspect_of_a_plain_image_says_it_is_not_a_kiln_image() -> R {
    let d = tempfile::tempdir()?;
    let img = simple_image(ImageFormat::Oci, "amd64", "plain")?;
    let dir = d.path().join("plain");
    write_oci_layout(&dir, &[&img], &[("v1", &img.manifest)])?;
    let reference = format!("oci:{}:v1", dir.display());
    let out = kiln(&["inspect", &reference], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("is not a kiln-converted image"),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("kiln convert --input"),
        "{}",
        text(&out)
    );
    // --json prints the report, and still fails.
    let out = kiln(&["inspect", &reference, "--json"], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["format"], "unknown");
    Ok(())
}

#[test]
fn verify_usage_errors_exit_1_and_hex_is_checked() -> R {
    let d = tempfile::tempdir()?;
    let out = kiln(
        &["verify", "oci:/nowhere:1", "--expect-mrenclave", "00112233"],
        d.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("--expect-mrenclave"), "{}", text(&out));
    assert!(err.contains("expected 64 hex digits"), "{}", text(&out));
    let out = kiln(
        &[
            "verify",
            "oci:/nowhere:1",
            "--expect-mrsigner",
            &"g".repeat(64),
        ],
        d.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("--expect-mrsigner"), "{}", text(&out));
    // An unknown flag and a missing image are usage errors too.
    let out = kiln(&["verify", "--no-such-flag"], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = kiln(&["verify"], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // --help is not an error.
    let out = kiln(&["verify", "--help"], d.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    Ok(())
}

#[test]
fn runtime_pack_help_lists_only_its_flags() -> R {
    let d = tempfile::tempdir()?;
    let out = kiln(&["runtime", "pack", "--help"], d.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("--runtime <"), "{help}");
    assert!(!help.contains("--state-dir"), "{help}");
    assert!(help.contains("--gramine-prefix"), "{help}");
    assert!(help.contains("--insecure-registry"), "{help}");
    let out = kiln(&["convert", "--help"], d.path());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--runtime <REF>"), "{help}");
    assert!(help.contains("--state-dir"), "{help}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_failing_before_signing_creates_no_key() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let h = reg.host();
    let d = tempfile::tempdir()?;
    let state = d.path().join("state");
    let home = d.path().to_path_buf();
    let state_s = state.to_str().ok_or("path")?.to_string();
    let out = tokio::task::spawn_blocking(move || {
        kiln(
            &[
                "convert",
                "--input",
                &format!("{h}/no/such:1"),
                "--output",
                &format!("{h}/out/x:1"),
                "--runtime",
                &format!("{h}/kiln/runtime:fixture"),
                "--insecure-registry",
                &h,
                "--state-dir",
                &state_s,
                "--no-bars",
            ],
            &home,
        )
    })
    .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !state.join("keys/default.pem").exists(),
        "a failed conversion left a key: {}",
        text(&out)
    );
    Ok(())
}

fn skopeo(args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new("skopeo").args(args).output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_from_and_to_oci_layouts() -> R {
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let h = reg.host();
    let input = push_busybox(&client, "sample/busybox").await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let d = tempfile::tempdir()?;
    let state = d.path().join("state");
    let state_s = state.to_str().ok_or("path")?.to_string();
    let runtime = format!("{h}/kiln/runtime:fixture");

    // Registry -> layout (created), then layout -> layout in the same directory, then
    // layout -> registry.
    let out_dir = d.path().join("out");
    let out_ref = format!("oci:{}:v1", out_dir.display());
    let common = |extra: &[String]| -> Vec<String> {
        let mut v: Vec<String> = ["convert"].iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().cloned());
        v.extend(
            [
                "--runtime",
                &runtime,
                "--insecure-registry",
                &h,
                "--state-dir",
                &state_s,
                "--no-bars",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    let run = |args: Vec<String>, home: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            kiln(&a, &home)
        })
    };
    let args = common(&[
        "--input".into(),
        format!("{h}/sample/busybox:1"),
        "--output".into(),
        out_ref.clone(),
    ]);
    let out = run(args, d.path().to_path_buf()).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(first["newImage"], out_ref.as_str(), "{first}");
    let digest = first["digest"].as_str().ok_or("digest")?.to_string();

    // skopeo reads it, and copies it to the registry.
    let insp = skopeo(&["inspect", &out_ref])?;
    assert!(insp.status.success(), "{}", text(&insp));
    let v: serde_json::Value = serde_json::from_slice(&insp.stdout)?;
    assert_eq!(v["Digest"], digest.as_str(), "{v}");
    assert!(
        v["Labels"]
            .as_object()
            .is_some_and(|l| l.keys().any(|k| k.contains("mrenclave"))),
        "{v}"
    );
    let dest = format!("docker://{h}/copied/busybox-sgx:1");
    let copy = skopeo(&["copy", "--dest-tls-verify=false", &out_ref, &dest])?;
    assert!(copy.status.success(), "{}", text(&copy));
    let copied = client.head_manifest("copied/busybox-sgx", "1").await?;
    assert!(copied.is_some());

    // kiln verifies the layout.
    let home = d.path().to_path_buf();
    let r = out_ref.clone();
    let ver = tokio::task::spawn_blocking(move || kiln(&["verify", &r], &home)).await?;
    assert_eq!(ver.status.code(), Some(0), "{}", text(&ver));

    // The input from a layout too: the plain busybox in its own layout, converted into the
    // same output layout under another tag; same enclave as from the registry.
    let in_dir = d.path().join("in");
    let in_copy = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{h}/sample/busybox:1"),
        &format!("oci:{}:src", in_dir.display()),
    ])?;
    assert!(in_copy.status.success(), "{}", text(&in_copy));
    let args = common(&[
        "--input".into(),
        format!("oci:{}", in_dir.display()),
        "--output".into(),
        format!("oci:{}:v2", out_dir.display()),
    ]);
    let out = run(args, d.path().to_path_buf()).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(second["mrenclave"], first["mrenclave"], "input {input}");
    assert_eq!(second["mrenclave2"], first["mrenclave2"]);
    let insp = skopeo(&["inspect", &format!("oci:{}:v2", out_dir.display())])?;
    assert!(insp.status.success(), "{}", text(&insp));

    // Within one layout (the blobs are already there), and from a layout to a registry.
    let args = common(&[
        "--input".into(),
        format!("oci:{}:src", in_dir.display()),
        "--output".into(),
        format!("oci:{}:sgx", in_dir.display()),
    ]);
    let out = run(args, d.path().to_path_buf()).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let insp = skopeo(&["inspect", &format!("oci:{}:sgx", in_dir.display())])?;
    assert!(insp.status.success(), "{}", text(&insp));
    let args = common(&[
        "--input".into(),
        format!("oci:{}:src", in_dir.display()),
        "--output".into(),
        format!("{h}/from-layout/app:1"),
    ]);
    let out = run(args, d.path().to_path_buf()).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("kiln.invalid"), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["mrenclave"], first["mrenclave"]);
    assert!(client
        .head_manifest("from-layout/app", "1")
        .await?
        .is_some());

    // A missing input layout is named.
    let args = common(&[
        "--input".into(),
        format!("oci:{}/none:1", d.path().display()),
        "--output".into(),
        format!("oci:{}:v3", out_dir.display()),
    ]);
    let out = run(args, d.path().to_path_buf()).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("none"), "{}", text(&out));
    Ok(())
}

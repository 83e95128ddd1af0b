//! `kiln inspect` and `kiln verify` on converted images from the test fixture
//! (`kiln_tests::converted_fixture`), as OCI layouts and from a real registry: exit
//! codes, the failing check named for each tampered variant, JSON output.

use std::path::Path;
use std::process::{Command, Output};

use kiln_engine::image::registry::UploadMode;
use kiln_tests::converted_fixture::{converted_image, gsc_image, Tamper};
use kiln_tests::images::{push_image, write_oci_layout, TestImage};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn layout(
    dir: &Path,
    image: &TestImage,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    write_oci_layout(dir, &[image], &[("v1", &image.manifest)])?;
    Ok(format!("oci:{}:v1", dir.display()))
}

#[test]
fn verify_and_inspect_a_good_image() -> R {
    let f = converted_image(Tamper::None)?;
    let dir = tempfile::tempdir()?;
    let img = layout(dir.path(), &f.image)?;
    let out = kiln(&[
        "verify",
        &img,
        "--expect-mrenclave",
        &f.mrenclave,
        "--expect-mrsigner",
        &f.mrsigner,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PASS sgx1/mrenclave"), "{text}");
    assert!(text.contains("verified: every check passed"));

    let out = kiln(&["verify", &img, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["passed"], true);
    assert_eq!(v["format"], "kiln");

    let out = kiln(&["inspect", &img]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.contains(&format!("mrenclave:       {}", f.mrenclave)),
        "{text}"
    );
    assert!(text.contains("gramine:         1.9"), "{text}");
    let out = kiln(&["inspect", &img, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["mrsigner"], f.mrsigner.as_str());
    assert_eq!(
        v["enclaves"][1]["sigstruct"]["enclavehash"],
        f.mrenclave2.as_str()
    );

    let out = kiln(&["verify", &img, "--expect-mrsigner", &"ab".repeat(32)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL image/expected-mrsigner"));
    Ok(())
}

#[test]
fn tampered_images_exit_non_zero_naming_the_check() -> R {
    for (tamper, line) in [
        (Tamper::ManifestByte, "FAIL sgx1/mrenclave"),
        (Tamper::WrongMrenclaveLabel, "FAIL sgx1/label"),
        (Tamper::OtherKey, "FAIL image/same-key"),
        (Tamper::WrongLibpal, "FAIL image/runtime-libpal"),
        (Tamper::MismatchedEnvSignature, "FAIL sgx1/env-signature"),
    ] {
        let f = converted_image(tamper)?;
        let dir = tempfile::tempdir()?;
        let img = layout(dir.path(), &f.image)?;
        let out = kiln(&["verify", &img]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{tamper:?}: {text}");
        assert!(text.contains(line), "{tamper:?}: want {line:?} in\n{text}");
    }
    Ok(())
}

#[test]
fn gsc_image_and_errors() -> R {
    let (image, mrenclave) = gsc_image()?;
    let dir = tempfile::tempdir()?;
    let img = layout(dir.path(), &image)?;
    let out = kiln(&["verify", &img, "--expect-mrenclave", &mrenclave]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = kiln(&["verify", "oci:/nonexistent-kiln-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent-kiln-dir"));
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn verify_from_a_registry() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let f = converted_image(Tamper::None)?;
    push_image(
        &client,
        "conv/app",
        &f.image,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;
    let img = format!("{}/conv/app:v1", reg.host());
    let host = reg.host();
    let out =
        tokio::task::spawn_blocking(move || kiln(&["verify", &img, "--insecure-registry", &host]))
            .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

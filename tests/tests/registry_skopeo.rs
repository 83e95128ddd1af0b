//! Interoperability with skopeo: images written by the harness's OCI layout writer and
//! copied in by skopeo resolve with kiln's client; images pushed by kiln's client are
//! read back by skopeo byte for byte.

use std::process::Command;

use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::registry::UploadMode;
use kiln_tests::images::{build_index, push_image, simple_image, write_oci_layout, ImageFormat};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn skopeo(args: &[&str]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out.stdout)
}

#[tokio::test]
async fn skopeo_pushes_our_oci_layout_and_kiln_resolves_it() -> R {
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = TestRegistry::plain()?;
    let amd = simple_image(ImageFormat::Oci, "amd64", "sk")?;
    let arm = simple_image(ImageFormat::Oci, "arm64", "sk")?;
    let idx = build_index(ImageFormat::Oci, &[&amd, &arm])?;
    let layout = tempfile::tempdir()?;
    write_oci_layout(
        layout.path(),
        &[&amd, &arm],
        &[("amd64", &amd.manifest), ("multi", &idx)],
    )?;
    let src = |tag: &str| format!("oci:{}:{tag}", layout.path().display());
    let dst = |r: &str| format!("docker://{}/{r}", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src("amd64"),
        &dst("sk/one:1"),
    ])?;
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &src("multi"),
        &dst("sk/multi:1"),
    ])?;

    let client = reg.client(None)?;
    let one = client
        .resolve_image(&reg.reference("sk/one:1")?, &PlatformSpec::linux_amd64())
        .await?;
    assert_eq!(
        one.manifest.digest(),
        amd.manifest.digest(),
        "skopeo kept our bytes"
    );
    assert_eq!(one.config, amd.config.data);
    let multi = client
        .resolve_image(&reg.reference("sk/multi:1")?, &PlatformSpec::linux_amd64())
        .await?;
    assert_eq!(multi.index.as_ref().map(|i| i.digest()), Some(idx.digest()));
    assert_eq!(multi.manifest.digest(), amd.manifest.digest());
    Ok(())
}

#[tokio::test]
async fn kiln_pushes_and_skopeo_reads_back() -> R {
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    for (format, repo) in [
        (ImageFormat::Oci, "kp/oci"),
        (ImageFormat::Docker, "kp/docker"),
    ] {
        let img = simple_image(format, "amd64", "kp")?;
        push_image(
            &client,
            repo,
            &img,
            Some("v1"),
            UploadMode::Chunked { chunk_size: 70 },
        )
        .await?;
        let src = format!("docker://{}/{repo}:v1", reg.host());
        let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src])?;
        assert_eq!(raw.as_slice(), img.manifest.bytes().as_ref());
        // a full copy verifies every blob's digest
        let out = tempfile::tempdir()?;
        let dst = format!("oci:{}:t", out.path().display());
        skopeo(&["copy", "--src-tls-verify=false", &src, &dst])?;
    }
    Ok(())
}

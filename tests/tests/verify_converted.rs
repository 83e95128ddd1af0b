//! inspect and verify on converted images built by `kiln_tests::converted_fixture`
//! (exactly docs/image-formats.md), read from OCI layouts and from a real registry;
//! tampered variants each fail the check that names what was broken; a GSC image.

use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::registry::UploadMode;
use kiln_engine::verify::{
    inspect, read_image, verify, CheckStatus, Expectations, ImageKind, RegistryBlobs, VerifyReport,
};
use kiln_native::OciLayout;
use kiln_tests::converted_fixture::{converted_image, gsc_image, gsc_vector_image, Tamper};
use kiln_tests::images::{push_image, write_oci_layout, TestImage};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn verify_layout(
    image: &TestImage,
    exp: &Expectations,
) -> Result<VerifyReport, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    write_oci_layout(dir.path(), &[image], &[("t", &image.manifest)])?;
    let layout = OciLayout::open(dir.path())?;
    let resolved = layout.resolve(Some("t"), &PlatformSpec::linux_amd64())?;
    let contents = read_image(&resolved, &layout).await?;
    Ok(verify(&contents, exp))
}

fn failed(r: &VerifyReport) -> Vec<(String, String)> {
    r.failures()
        .map(|c| (c.subject.clone(), c.id.clone()))
        .collect()
}

#[tokio::test]
async fn good_image_verifies_and_inspects() -> R {
    let f = converted_image(Tamper::None)?;
    let exp = Expectations {
        mrenclave: Some(f.mrenclave2.to_uppercase()),
        mrsigner: Some(f.mrsigner.clone()),
    };
    let r = verify_layout(&f.image, &exp).await?;
    assert!(r.passed, "{:#?}", r.checks);
    assert_eq!(r.format, ImageKind::Kiln);
    let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "runtime-libpal",
        "libsysdb",
        "manifest-isv",
        "signature",
        "q1q2",
        "mrenclave",
        "sigstruct-body",
        "label",
        "env-signature",
        "mrsigner-label",
        "same-key",
        "same-isv",
        "isv-labels",
        "expected-mrenclave",
        "expected-mrsigner",
    ] {
        assert!(ids.contains(&id), "missing check {id}: {ids:?}");
    }
    assert_eq!(
        r.mrenclaves,
        vec![
            ("sgx1".to_string(), f.mrenclave.clone()),
            ("edmm".to_string(), f.mrenclave2.clone())
        ]
    );
    assert_eq!(r.mrsigner.as_deref(), Some(f.mrsigner.as_str()));

    // Wrong expectations fail exactly those checks.
    let r = verify_layout(
        &f.image,
        &Expectations {
            mrenclave: Some("11".repeat(32)),
            mrsigner: Some("22".repeat(32)),
        },
    )
    .await?;
    assert_eq!(
        failed(&r),
        vec![
            ("image".into(), "expected-mrenclave".into()),
            ("image".into(), "expected-mrsigner".into())
        ]
    );

    // inspect
    let dir = tempfile::tempdir()?;
    write_oci_layout(dir.path(), &[&f.image], &[("t", &f.image.manifest)])?;
    let layout = OciLayout::open(dir.path())?;
    let resolved = layout.resolve(Some("t"), &PlatformSpec::linux_amd64())?;
    let i = inspect(&read_image(&resolved, &layout).await?);
    assert_eq!(i.mrenclave.as_deref(), Some(f.mrenclave.as_str()));
    assert_eq!(i.mrenclave2.as_deref(), Some(f.mrenclave2.as_str()));
    assert_eq!(i.isvprodid.as_deref(), Some("7"));
    assert_eq!(i.gramine_version.as_deref(), Some("1.9"));
    assert_eq!(i.enclaves.len(), 2);
    let s = i.enclaves[0].sigstruct.as_ref().ok_or("no sigstruct")?;
    assert_eq!(s.enclavehash, f.mrenclave);
    assert!(s.signature_valid);
    assert_eq!(
        i.conversion.as_ref().map(|c| c["kilnVersion"].clone()),
        Some("0.1.0".into())
    );
    assert_eq!(
        i.launcher.as_ref().map(|c| c["runtimeDir"].clone()),
        Some("/opt/kiln/runtime".into())
    );
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    let j = serde_json::to_value(&i)?;
    assert_eq!(j["format"], "kiln");
    Ok(())
}

#[tokio::test]
async fn tampered_images_fail_the_right_check() -> R {
    let cases: &[(Tamper, &[(&str, &str)])] = &[
        (
            Tamper::ManifestByte,
            &[("sgx1", "mrenclave"), ("sgx1", "label")],
        ),
        (Tamper::WrongMrenclaveLabel, &[("sgx1", "label")]),
        (
            Tamper::WrongLibsysdb,
            &[("sgx1", "libsysdb"), ("edmm", "libsysdb")],
        ),
        (Tamper::DebugAttribute, &[("sgx1", "sigstruct-body")]),
        (
            Tamper::OtherKey,
            &[("image", "mrsigner-label"), ("image", "same-key")],
        ),
        (Tamper::WrongLibpal, &[("image", "runtime-libpal")]),
        (Tamper::MismatchedEnvSignature, &[("sgx1", "env-signature")]),
    ];
    for (tamper, want) in cases {
        let f = converted_image(*tamper)?;
        let r = verify_layout(&f.image, &Expectations::default()).await?;
        assert!(!r.passed, "{tamper:?} passed");
        let got = failed(&r);
        for (subject, id) in *want {
            assert!(
                got.contains(&(subject.to_string(), id.to_string())),
                "{tamper:?}: expected {subject}/{id} to fail, failures {got:?}"
            );
        }
        for c in r.failures() {
            assert!(!c.explanation.is_empty());
        }
    }
    Ok(())
}

#[tokio::test]
async fn gsc_image_verifies() -> R {
    let (image, mrenclave) = gsc_image()?;
    let r = verify_layout(
        &image,
        &Expectations {
            mrenclave: Some(mrenclave),
            mrsigner: None,
        },
    )
    .await?;
    assert_eq!(r.format, ImageKind::Gsc);
    assert!(r.passed, "{:#?}", r.checks);
    assert!(r.checks.iter().any(|c| c.id == "mrenclave"
        && c.status == CheckStatus::Pass
        && c.explanation
            .contains("/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/sgx/libpal.so")));
    Ok(())
}

#[tokio::test]
async fn env_only_image_reports_not_recomputable() -> R {
    // Take a converted image's config env and put it on a plain image.
    let f = converted_image(Tamper::None)?;
    let cfg: serde_json::Value = serde_json::from_slice(&f.image.config.data)?;
    let env: Vec<String> = cfg["config"]["Env"]
        .as_array()
        .ok_or("env")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|v| v.starts_with("ENCLAVEOS_"))
        .collect();
    let mut plain =
        kiln_tests::images::simple_image(kiln_tests::images::ImageFormat::Oci, "amd64", "env")?;
    let mut pcfg: serde_json::Value = serde_json::from_slice(&plain.config.data)?;
    pcfg["config"]["Env"] = serde_json::json!(env);
    plain.set_config(&pcfg)?;
    let r = verify_layout(
        &plain,
        &Expectations {
            mrenclave: Some(f.mrenclave.clone()),
            mrsigner: Some(f.mrsigner.clone()),
        },
    )
    .await?;
    assert_eq!(r.format, ImageKind::EnclaveOsEnv);
    assert!(r.passed, "{:#?}", r.checks);
    assert!(r.checks.iter().any(|c| c.id == "mrenclave"
        && c.status == CheckStatus::Info
        && c.explanation.contains("not recomputable")));
    Ok(())
}

#[tokio::test]
async fn unknown_image_fails() -> R {
    let plain =
        kiln_tests::images::simple_image(kiln_tests::images::ImageFormat::Oci, "amd64", "unknown")?;
    let r = verify_layout(&plain, &Expectations::default()).await?;
    assert_eq!(r.format, ImageKind::Unknown);
    assert!(!r.passed);
    assert_eq!(
        failed(&r),
        vec![("image".to_string(), "format".to_string())]
    );
    Ok(())
}

#[tokio::test]
async fn verifies_from_a_registry() -> R {
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
    let reference = reg.reference("conv/app:v1")?;
    let resolved = client
        .resolve_image(&reference, &PlatformSpec::linux_amd64())
        .await?;
    let blobs = RegistryBlobs::new(&client, reference.repository());
    let contents = read_image(&resolved, &blobs).await?;
    let r = verify(&contents, &Expectations::default());
    assert!(r.passed, "{:#?}", r.checks);
    assert_eq!(r.manifest_digest, f.image.manifest.digest().to_string());
    Ok(())
}

/// Gramine's own SIGSTRUCT (t1.sig, from gramine-sgx-sign) verifies against the MRENCLAVE
/// kiln recomputes: an oracle independent of kiln's signer. Gramine's signer was given
/// ISV ids 7/3 over a manifest without any, reported as an override.
#[tokio::test]
async fn gramine_signed_vector_verifies() -> R {
    let image = gsc_vector_image()?;
    let exp = Expectations {
        mrenclave: Some("deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b".into()),
        mrsigner: Some("6c1c0067059a174d7b902d449fd101ffff9e9c5ca096d19d16a22a4ab3cf0bfe".into()),
    };
    let r = verify_layout(&image, &exp).await?;
    assert!(r.passed, "{:#?}", r.checks);
    assert!(r
        .checks
        .iter()
        .any(|c| c.id == "manifest-isv" && c.status == CheckStatus::Info));
    assert!(r
        .checks
        .iter()
        .any(|c| c.id == "sigstruct-body" && c.status == CheckStatus::Pass));
    Ok(())
}

//! Reading OCI image layouts (`oci:DIR[:TAG]`) with kiln-native: layouts written by
//! the harness, and by umoci.

use futures_util::StreamExt;
use kiln_engine::image::manifest::{ManifestError, PlatformSpec};
use kiln_native::{OciLayout, OciLayoutError};
use kiln_tests::images::{build_index, simple_image, write_oci_layout, ImageFormat};
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn resolves_tags_and_indexes() -> R {
    let amd = simple_image(ImageFormat::Oci, "amd64", "lay")?;
    let arm = simple_image(ImageFormat::Oci, "arm64", "lay")?;
    let idx = build_index(ImageFormat::Oci, &[&arm, &amd])?;
    let only_arm = build_index(ImageFormat::Oci, &[&arm])?;
    let dir = tempfile::tempdir()?;
    write_oci_layout(
        dir.path(),
        &[&amd, &arm],
        &[
            ("amd64", &amd.manifest),
            ("multi", &idx),
            ("armonly", &only_arm),
        ],
    )?;
    let l = OciLayout::open(dir.path())?;
    let p = PlatformSpec::linux_amd64();
    let r = l.resolve(Some("amd64"), &p)?;
    assert!(r.index.is_none());
    assert_eq!(r.manifest.digest(), amd.manifest.digest());
    assert_eq!(r.config, amd.config.data);
    let r = l.resolve(Some("multi"), &p)?;
    assert_eq!(r.index.as_ref().map(|i| i.digest()), Some(idx.digest()));
    assert_eq!(r.manifest.digest(), amd.manifest.digest());

    let e = l.resolve(Some("armonly"), &p);
    assert!(matches!(
        e,
        Err(OciLayoutError::Manifest(
            ManifestError::NoMatchingPlatform { .. }
        ))
    ));
    match l.resolve(Some("nope"), &p) {
        Err(OciLayoutError::TagNotFound { present, .. }) => {
            assert_eq!(present, vec!["amd64", "multi", "armonly"])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        l.resolve(None, &p),
        Err(OciLayoutError::Ambiguous { count: 3, .. })
    ));

    // streamed blobs verify; a tampered one fails at the end
    let layer = &amd.layers[0];
    let mut s = l.blob_stream(&layer.digest, Some(layer.data.len() as u64))?;
    let mut got = Vec::new();
    while let Some(c) = s.next().await {
        got.extend_from_slice(&c?);
    }
    assert_eq!(got, layer.data.to_vec());
    std::fs::write(l.blob_path(&layer.digest), b"tampered")?;
    let mut s = l.blob_stream(&layer.digest, None)?;
    let mut failed = false;
    while let Some(c) = s.next().await {
        failed |= c.is_err();
    }
    assert!(failed);
    std::fs::write(l.blob_path(&amd.config.digest), b"{}")?;
    assert!(l.resolve(Some("amd64"), &p).is_err(), "tampered config");
    assert!(matches!(
        OciLayout::open(&dir.path().join("blobs")),
        Err(OciLayoutError::NotALayout(_))
    ));
    Ok(())
}

#[tokio::test]
async fn reads_an_umoci_layout() -> R {
    require_tool!("umoci");
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("l");
    let ls = layout.display().to_string();
    for args in [
        vec!["init", "--layout", ls.as_str()],
        vec!["new", "--image", &format!("{ls}:t")],
    ] {
        let out = std::process::Command::new("umoci").args(&args).output()?;
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let l = OciLayout::open(&layout)?;
    let r = l.resolve(Some("t"), &PlatformSpec::linux_amd64())?;
    assert_eq!(r.image_manifest.layers().len(), 0);
    assert!(!r.config.is_empty());
    Ok(())
}

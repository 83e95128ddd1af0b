//! Real-registry tests against an anonymous plain-HTTP `docker-registry`.

use futures_util::StreamExt;
use kiln_engine::image::manifest::{ManifestError, ManifestKind, PlatformSpec};
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::{ErrorClass, MountOutcome, RegistryError, UploadMode};
use kiln_engine::image::transport::Body;
use kiln_tests::images::{
    build_image, build_index, noise, push_image, push_index, simple_image, Blob, FileSpec,
    ImageFormat,
};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn read_blob(
    client: &kiln_engine::image::registry::RegistryClient,
    repo: &str,
    blob: &Blob,
) -> Result<Vec<u8>, RegistryError> {
    let mut s = client
        .get_blob(repo, &blob.digest, Some(blob.data.len() as u64))
        .await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

async fn round_trip(format: ImageFormat, mode: UploadMode) -> R {
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    client.ping().await?;
    let img = simple_image(format, "amd64", "rt")?;
    let d = push_image(&client, "test/rt", &img, Some("v1"), mode).await?;
    assert_eq!(&d, img.manifest.digest());

    // by tag and by digest: exact bytes, right kind
    let got = client.get_manifest("test/rt", "v1").await?;
    assert_eq!(got.bytes(), img.manifest.bytes());
    assert_eq!(got.digest(), img.manifest.digest());
    let want_kind = match format {
        ImageFormat::Oci => ManifestKind::OciManifest,
        ImageFormat::Docker => ManifestKind::DockerManifest,
    };
    assert_eq!(got.kind(), want_kind);
    let by_digest = client.get_manifest("test/rt", &d.to_string()).await?;
    assert_eq!(by_digest.bytes(), img.manifest.bytes());

    let head = client.head_manifest("test/rt", "v1").await?;
    assert_eq!(
        head.as_ref().and_then(|h| h.digest.clone()),
        Some(d.clone())
    );
    assert_eq!(head.and_then(|h| h.size), Some(img.manifest.size()));
    assert_eq!(client.head_manifest("test/rt", "nope").await?, None);

    for l in &img.layers {
        assert_eq!(
            client.blob_exists("test/rt", &l.digest).await?,
            Some(l.data.len() as u64)
        );
        assert_eq!(read_blob(&client, "test/rt", l).await?, l.data.to_vec());
    }

    // resolve (single manifest, no index)
    let r = reg.reference("test/rt:v1")?;
    let resolved = client
        .resolve_image(&r, &PlatformSpec::linux_amd64())
        .await?;
    assert!(resolved.index.is_none());
    assert_eq!(resolved.config, img.config.data);
    assert_eq!(resolved.image_manifest.layers().len(), 2);
    Ok(())
}

#[tokio::test]
async fn oci_manifest_monolithic_round_trip() -> R {
    require_tool!("docker-registry");
    round_trip(ImageFormat::Oci, UploadMode::Monolithic).await
}

#[tokio::test]
async fn docker_v2_manifest_chunked_round_trip() -> R {
    require_tool!("docker-registry");
    round_trip(ImageFormat::Docker, UploadMode::Chunked { chunk_size: 64 }).await
}

#[tokio::test]
async fn chunked_streamed_upload_of_a_larger_blob() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    // 3 MiB + 17 bytes in uneven 100 KiB source chunks, uploaded in 1 MiB PATCHes
    let data = noise(3 * 1024 * 1024 + 17, 7);
    let digest = Digest::sha256_of(&data);
    let chunks: Vec<bytes::Bytes> = data
        .chunks(100 * 1024)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let body = Body::Stream {
        stream: kiln_engine::image::transport::stream_from_chunks(chunks.clone()),
        length: Some(data.len() as u64),
    };
    client
        .push_blob(
            "big/chunked",
            &digest,
            body,
            UploadMode::Chunked {
                chunk_size: 1 << 20,
            },
        )
        .await?;
    assert_eq!(
        client.blob_exists("big/chunked", &digest).await?,
        Some(data.len() as u64)
    );
    // the same through a streamed monolithic PUT
    let body = Body::Stream {
        stream: kiln_engine::image::transport::stream_from_chunks(chunks),
        length: Some(data.len() as u64),
    };
    client
        .push_blob("big/mono", &digest, body, UploadMode::Monolithic)
        .await?;
    let blob = Blob::new("application/octet-stream", data.clone());
    assert_eq!(read_blob(&client, "big/mono", &blob).await?, data);
    Ok(())
}

#[tokio::test]
async fn wrong_digest_upload_is_rejected() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let e = client
        .push_blob(
            "bad/digest",
            &Digest::sha256_of(b"something else"),
            Body::from(b"content".to_vec()),
            UploadMode::Monolithic,
        )
        .await;
    let Err(e) = e else {
        panic!("a wrong digest must be refused")
    };
    assert_eq!(e.class(), ErrorClass::BadInput, "{e}");
    assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
    Ok(())
}

#[tokio::test]
async fn missing_things_are_not_found() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let e = client.get_manifest("no/such", "latest").await;
    assert!(
        matches!(&e, Err(e) if e.class() == ErrorClass::NotFound && e.http_status() == 404),
        "{e:?}"
    );
    let d = Digest::sha256_of(b"absent");
    assert_eq!(client.blob_exists("no/such", &d).await?, None);
    let e = client.get_blob("no/such", &d, None).await;
    assert!(matches!(&e, Err(e) if e.class() == ErrorClass::NotFound));
    Ok(())
}

#[tokio::test]
async fn multi_arch_index_resolves_to_amd64() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    for format in [ImageFormat::Oci, ImageFormat::Docker] {
        let amd = simple_image(format, "amd64", "multi")?;
        let arm = simple_image(format, "arm64", "multi")?;
        let idx = build_index(format, &[&arm, &amd])?;
        push_index(&client, "multi/img", &idx, &[&arm, &amd], Some("multi")).await?;
        let r = reg.reference("multi/img:multi")?;
        let res = client
            .resolve_image(&r, &PlatformSpec::linux_amd64())
            .await?;
        assert_eq!(res.index.as_ref().map(|i| i.digest()), Some(idx.digest()));
        assert!(res.index.as_ref().is_some_and(|i| i.kind().is_index()));
        assert_eq!(res.manifest.digest(), amd.manifest.digest());
        assert_eq!(res.config, amd.config.data);
        // by index digest too
        let r = reg.reference(&format!("multi/img@{}", idx.digest()))?;
        let res = client
            .resolve_image(&r, &PlatformSpec::linux_amd64())
            .await?;
        assert_eq!(res.manifest.digest(), amd.manifest.digest());
    }
    Ok(())
}

#[tokio::test]
async fn index_without_amd64_lists_platforms() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let arm = simple_image(ImageFormat::Oci, "arm64", "noamd")?;
    let s390 = build_image(
        ImageFormat::Oci,
        "linux",
        "s390x",
        None,
        &[vec![FileSpec::new("x", "s390x")]],
    )?;
    let idx = build_index(ImageFormat::Oci, &[&arm, &s390])?;
    push_index(&client, "noamd/img", &idx, &[&arm, &s390], Some("t")).await?;
    let r = reg.reference("noamd/img:t")?;
    let e = client.resolve_image(&r, &PlatformSpec::linux_amd64()).await;
    let Err(e) = e else {
        panic!("no amd64 must fail")
    };
    assert_eq!(e.class(), ErrorClass::BadInput);
    match &e {
        RegistryError::Manifest(ManifestError::NoMatchingPlatform { present, .. }) => {
            assert_eq!(
                present,
                &vec!["linux/arm64/v8".to_string(), "linux/s390x".to_string()]
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(e.to_string().contains("linux/arm64/v8, linux/s390x"), "{e}");
    Ok(())
}

#[tokio::test]
async fn single_platform_image_of_another_arch_is_refused() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let arm = simple_image(ImageFormat::Docker, "arm64", "solo")?;
    push_image(
        &client,
        "solo/arm",
        &arm,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;
    let e = client
        .resolve_image(&reg.reference("solo/arm:v1")?, &PlatformSpec::linux_amd64())
        .await;
    let Err(e) = e else {
        panic!("an arm64 image must be refused")
    };
    assert_eq!(e.class(), ErrorClass::BadInput);
    assert!(e.to_string().contains("linux/arm64/v8"), "{e}");
    Ok(())
}

#[tokio::test]
async fn mount_on_the_same_registry() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let img = simple_image(ImageFormat::Oci, "amd64", "mount")?;
    push_image(
        &client,
        "src/repo",
        &img,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;
    let layer = &img.layers[0];
    assert_eq!(client.blob_exists("dst/repo", &layer.digest).await?, None);
    let out = client
        .mount_blob("dst/repo", &layer.digest, "src/repo")
        .await?;
    assert_eq!(out, MountOutcome::Mounted);
    assert_eq!(
        client.blob_exists("dst/repo", &layer.digest).await?,
        Some(layer.data.len() as u64)
    );
    // a blob the source does not have: the registry opens an upload session instead,
    // and the upload through it works
    let fresh = Blob::new("application/octet-stream", b"not in src".to_vec());
    let out = client
        .mount_blob("dst/repo", &fresh.digest, "src/repo")
        .await?;
    let MountOutcome::NotMounted(session) = out else {
        panic!("expected an upload session")
    };
    client
        .upload_session(
            session,
            &fresh.digest,
            Body::Bytes(fresh.data.clone()),
            UploadMode::Monolithic,
        )
        .await?;
    assert!(client
        .blob_exists("dst/repo", &fresh.digest)
        .await?
        .is_some());
    Ok(())
}

#[tokio::test]
async fn push_order_tag_written_last() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let img = simple_image(ImageFormat::Oci, "amd64", "order")?;
    // a manifest before its blobs is refused: blobs must go first
    let e = client.push_manifest("order/img", &img.manifest).await;
    assert!(e.is_err(), "manifest before blobs must fail");
    // blobs, then manifest by digest: no tag yet
    push_image(&client, "order/img", &img, None, UploadMode::Monolithic).await?;
    // distribution answers 404 NAME_UNKNOWN for a repository without tags
    match client.list_tags("order/img").await {
        Ok(tags) => assert!(tags.is_empty(), "{tags:?}"),
        Err(e) => assert_eq!(e.class(), ErrorClass::NotFound, "{e}"),
    }
    assert!(client
        .head_manifest("order/img", &img.manifest.digest().to_string())
        .await?
        .is_some());
    // then the tag
    client
        .tag_manifest("order/img", "v1", &img.manifest)
        .await?;
    client
        .tag_manifest("order/img", "v2", &img.manifest)
        .await?;
    let mut tags = client.list_tags("order/img").await?;
    tags.sort();
    assert_eq!(tags, vec!["v1".to_string(), "v2".to_string()]);
    Ok(())
}

#[tokio::test]
async fn corrupt_blob_is_caught_by_the_verifying_stream() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let blob = Blob::new("application/octet-stream", b"original".to_vec());
    client
        .push_blob(
            "corrupt/x",
            &blob.digest,
            Body::Bytes(blob.data.clone()),
            UploadMode::Monolithic,
        )
        .await?;
    // overwrite the stored blob behind the registry's back
    let path = reg
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&blob.digest.hex()[..2])
        .join(blob.digest.hex())
        .join("data");
    std::fs::write(&path, b"tampered")?;
    let e = read_blob(&client, "corrupt/x", &blob).await;
    assert!(
        matches!(&e, Err(RegistryError::ContentMismatch { .. })),
        "{e:?}"
    );
    Ok(())
}

//! Real-registry tests against `docker-registry` with bearer-token auth served by the
//! harness's token server (RS256 JWT with x5c).

use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::registry::{Credentials, ErrorClass, MountOutcome, UploadMode};
use kiln_tests::images::{build_index, push_image, push_index, simple_image, ImageFormat};
use kiln_tests::registry::{TestRegistry, TEST_USER, TOKEN_SERVICE};
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn token_auth_push_and_pull() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::token()?;
    let client = reg.client(Some(TestRegistry::credentials()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "tok")?;
    push_image(
        &client,
        "tok/img",
        &img,
        Some("v1"),
        UploadMode::Chunked { chunk_size: 80 },
    )
    .await?;
    let amd = simple_image(ImageFormat::Docker, "amd64", "tok-multi")?;
    let arm = simple_image(ImageFormat::Docker, "arm64", "tok-multi")?;
    let idx = build_index(ImageFormat::Docker, &[&arm, &amd])?;
    push_index(&client, "tok/multi", &idx, &[&arm, &amd], Some("m")).await?;

    // anonymous pull is allowed by the token server's policy
    let anon = reg.client(None)?;
    assert_eq!(
        anon.get_manifest("tok/img", "v1").await?.bytes(),
        img.manifest.bytes()
    );
    let res = anon
        .resolve_image(&reg.reference("tok/multi:m")?, &PlatformSpec::linux_amd64())
        .await?;
    assert_eq!(res.manifest.digest(), amd.manifest.digest());

    let reqs = reg.token_server().map(|t| t.requests()).unwrap_or_default();
    assert!(reqs
        .iter()
        .all(|r| r.service.as_deref() == Some(TOKEN_SERVICE)));
    assert!(reqs.iter().any(|r| r.user.as_deref() == Some(TEST_USER)
        && r.scopes
            .contains(&"repository:tok/img:pull,push".to_string())));
    // tokens are cached per scope: far fewer token requests than registry requests
    assert!(reqs.len() < 20, "{} token requests", reqs.len());
    Ok(())
}

#[tokio::test]
async fn token_auth_anonymous_push_is_refused() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::token()?;
    let anon = reg.client(None)?;
    let img = simple_image(ImageFormat::Oci, "amd64", "anon")?;
    let e = push_image(&anon, "tok/anon", &img, Some("v1"), UploadMode::Monolithic).await;
    let Err(e) = e else {
        panic!("anonymous push must fail")
    };
    assert!(
        matches!(e.class(), ErrorClass::Unauthorized | ErrorClass::Forbidden),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn token_auth_wrong_password() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::token()?;
    let wrong = "tok-wrong-pw-5521";
    let client = reg.client(Some(Credentials::new(TEST_USER, wrong)))?;
    let e = client.get_manifest("tok/img", "v1").await;
    let Err(e) = e else { panic!("must fail") };
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    let reqs = reg.token_server().map(|t| t.requests()).unwrap_or_default();
    assert!(reqs.iter().any(|r| !r.granted));
    Ok(())
}

#[tokio::test]
async fn token_auth_cross_repository_mount() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::token()?;
    let client = reg.client(Some(TestRegistry::credentials()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "tok-mount")?;
    push_image(
        &client,
        "runtime/gramine",
        &img,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;

    // a fresh client (no cached tokens), as a conversion would use
    let client = reg.client(Some(TestRegistry::credentials()))?;
    for layer in &img.layers {
        let out = client
            .mount_blob("apps/converted", &layer.digest, "runtime/gramine")
            .await?;
        assert_eq!(out, MountOutcome::Mounted, "layer {}", layer.digest);
        assert!(client
            .blob_exists("apps/converted", &layer.digest)
            .await?
            .is_some());
    }
    let reqs = reg.token_server().map(|t| t.requests()).unwrap_or_default();
    assert!(
        reqs.iter().any(|r| {
            r.scopes
                .contains(&"repository:apps/converted:pull,push".to_string())
                && r.scopes
                    .contains(&"repository:runtime/gramine:pull".to_string())
        }),
        "the mount token must carry pull on the source: {reqs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn blob_copy_skips_mounts_or_streams() -> R {
    use kiln_engine::image::registry::{BlobCopy, CopyOutcome};
    require_tool!("docker-registry");
    let src_reg = TestRegistry::plain()?;
    let dst_reg = TestRegistry::token()?;
    let src = src_reg.client(None)?;
    let dst = dst_reg.client(Some(TestRegistry::credentials()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "copy")?;
    push_image(&src, "in/img", &img, Some("v1"), UploadMode::Monolithic).await?;
    let layer = &img.layers[0];
    let size = Some(layer.data.len() as u64);
    // another registry: streamed from source into the upload
    let to_a = BlobCopy {
        src: &src,
        src_repo: "in/img",
        dst: &dst,
        dst_repo: "out/a",
        digest: &layer.digest,
        size,
        mode: UploadMode::Monolithic,
    };
    assert_eq!(to_a.copy().await?, CopyOutcome::Uploaded);
    // again: already present
    assert_eq!(to_a.copy().await?, CopyOutcome::AlreadyPresent);
    // same registry, other repository: mounted
    let a_to_b = BlobCopy {
        src: &dst,
        src_repo: "out/a",
        dst_repo: "out/b",
        ..to_a
    };
    assert_eq!(a_to_b.copy().await?, CopyOutcome::Mounted);
    // a wrong size is caught while streaming and the upload is not completed
    let l2 = &img.layers[1];
    let e = BlobCopy {
        dst_repo: "out/c",
        digest: &l2.digest,
        size: Some(l2.data.len() as u64 + 1),
        mode: UploadMode::Chunked {
            chunk_size: 1 << 20,
        },
        ..to_a
    }
    .copy()
    .await;
    assert!(e.is_err(), "{e:?}");
    assert_eq!(dst.blob_exists("out/c", &l2.digest).await?, None);
    Ok(())
}

/// An identity token (what `docker login` stores as `identitytoken`, or a credential
/// helper answers with user `<token>`) is exchanged with the OAuth2 refresh-token
/// grant: POST, never Basic; a wrong one is refused without being quoted.
#[tokio::test]
async fn identity_token_uses_the_oauth2_post_grant() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::token()?;
    let token = reg
        .token_server()
        .map(|t| t.identity_token())
        .ok_or("token server")?;
    let client = reg.client(Some(Credentials::identity_token(token)))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "idt")?;
    push_image(&client, "tok/idt", &img, Some("v1"), UploadMode::Monolithic).await?;
    assert_eq!(
        client.get_manifest("tok/idt", "v1").await?.bytes(),
        img.manifest.bytes()
    );
    let reqs = reg.token_server().map(|t| t.requests()).unwrap_or_default();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter().all(|r| r.method == "POST" && r.granted),
        "{reqs:?}"
    );
    assert!(reqs.iter().any(|r| r.user.as_deref() == Some(TEST_USER)
        && r.scopes
            .contains(&"repository:tok/idt:pull,push".to_string())));

    let wrong = "kiln-refresh-wrong-7781";
    let bad = reg.client(Some(Credentials::identity_token(wrong)))?;
    let e = bad.get_manifest("tok/idt", "v1").await;
    let Err(e) = e else { panic!("must fail") };
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    Ok(())
}

//! Docker Hub's token scopes, against a real `docker-registry` whose token server grants
//! as Hub's does ([`RegistryAuth::HubToken`]): an action the account may not have is
//! left out of the token (the token server says 200), and the registry then answers
//! the request with 401 `insufficient_scope`. kiln must say what was not granted, and
//! must not fail a copy that a plain upload can do when only the mount was not granted.

use kiln_engine::api::{ApiError, AuthConfig, ConvertRequest};
use kiln_engine::image::registry::{BlobCopy, CopyOutcome, Credentials, ErrorClass, UploadMode};
use kiln_engine::pipeline::{convert, ConvertOutcome};
use kiln_tests::images::{
    build_image, push_image, simple_image, tag_exists, FileSpec, ImageFormat,
};
use kiln_tests::registry::{
    RegistryAuth, RegistryOptions, TestRegistry, SECOND_PASSWORD, SECOND_USER, TEST_PASSWORD,
    TEST_USER,
};
use kiln_tests::require_tool;
use kiln_tests::runtime_fixture::{push_fixture_runtime, test_pipeline_env, RuntimeBinaries};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn hub() -> Result<TestRegistry, kiln_tests::HarnessError> {
    TestRegistry::start(RegistryOptions {
        auth: RegistryAuth::HubToken,
        tls: false,
    })
}

fn me() -> Credentials {
    Credentials::new(TEST_USER, TEST_PASSWORD)
}

fn other() -> Credentials {
    Credentials::new(SECOND_USER, SECOND_PASSWORD)
}

#[tokio::test]
async fn push_outside_the_account_names_the_missing_scope_and_writes_no_tag() -> R {
    require_tool!("docker-registry");
    let reg = hub()?;
    let mine = reg.client(Some(me()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "hub-own")?;
    push_image(
        &mine,
        &format!("{TEST_USER}/app"),
        &img,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;

    let theirs = format!("{SECOND_USER}/app");
    let e = push_image(&mine, &theirs, &img, Some("v1"), UploadMode::Monolithic).await;
    let Err(e) = e else {
        panic!("a push to another account's repository must fail")
    };
    let text = e.to_string();
    assert_eq!(e.class(), ErrorClass::Forbidden, "{text}");
    assert!(text.contains("push") && text.contains(&theirs), "{text}");
    assert!(!text.contains(TEST_PASSWORD), "{text}");
    let owner = reg.client(Some(other()))?;
    assert!(
        owner.get_manifest(&theirs, "v1").await.is_err(),
        "no tag was written"
    );
    Ok(())
}

#[tokio::test]
async fn a_private_repository_is_refused_to_others_with_a_clear_error() -> R {
    require_tool!("docker-registry");
    let reg = hub()?;
    let owner = reg.client(Some(other()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "hub-private")?;
    let private = format!("{SECOND_USER}/private-src");
    push_image(&owner, &private, &img, Some("v1"), UploadMode::Monolithic).await?;
    assert!(owner.get_manifest(&private, "v1").await.is_ok());
    for client in [reg.client(Some(me()))?, reg.client(None)?] {
        let e = client.get_manifest(&private, "v1").await;
        let Err(e) = e else {
            panic!("another account must not read a private repository")
        };
        let text = e.to_string();
        assert!(
            matches!(e.class(), ErrorClass::Forbidden | ErrorClass::Unauthorized),
            "{text}"
        );
        assert!(text.contains("pull") && text.contains(&private), "{text}");
    }
    Ok(())
}

#[tokio::test]
async fn a_mount_the_token_does_not_cover_falls_back_to_a_streamed_upload() -> R {
    require_tool!("docker-registry");
    let reg = hub()?;
    let src = reg.client(Some(other()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "hub-mount")?;
    let private = format!("{SECOND_USER}/private-src");
    push_image(&src, &private, &img, Some("v1"), UploadMode::Monolithic).await?;

    // The output account may not pull the input's private repository, so Hub leaves
    // that scope out of the mount's token; the blob must still get there.
    let dst = reg.client(Some(me()))?;
    let target = format!("{TEST_USER}/converted");
    for layer in &img.layers {
        let out = BlobCopy {
            src: &src,
            src_repo: &private,
            dst: &dst,
            dst_repo: &target,
            digest: &layer.digest,
            size: Some(layer.data.len() as u64),
            mode: UploadMode::Monolithic,
        }
        .copy()
        .await?;
        assert_eq!(out, CopyOutcome::Uploaded, "layer {}", layer.digest);
        assert!(dst.blob_exists(&target, &layer.digest).await?.is_some());
    }
    // Within one account the mount is granted and used.
    let again = format!("{TEST_USER}/again");
    for layer in &img.layers {
        let out = BlobCopy {
            src: &dst,
            src_repo: &target,
            dst: &dst,
            dst_repo: &again,
            digest: &layer.digest,
            size: Some(layer.data.len() as u64),
            mode: UploadMode::Monolithic,
        }
        .copy()
        .await?;
        assert_eq!(out, CopyOutcome::Mounted, "layer {}", layer.digest);
    }
    Ok(())
}

/// Converts `kiln-other/private-app:1` (read with the second account) into `output` on
/// the same Hub-like registry, written with [`TEST_USER`]; the runtime image lives on a
/// plain registry. Returns the conversion's result and whether the output tag exists.
async fn convert_across_accounts(
    output: &str,
) -> Result<(Result<ConvertOutcome, ApiError>, bool), Box<dyn std::error::Error + Send + Sync>> {
    let reg = hub()?;
    let plain = TestRegistry::plain()?;
    let mut sh = FileSpec::new("bin/sh", "#!fake shell\n");
    sh.mode = 0o755;
    let img = build_image(ImageFormat::Oci, "linux", "amd64", None, &[vec![sh]])?;
    let input = format!("{SECOND_USER}/private-app");
    push_image(
        &reg.client(Some(other()))?,
        &input,
        &img,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    push_fixture_runtime(&plain.client(None)?, &RuntimeBinaries::placeholders()).await?;
    let mut env = test_pipeline_env(
        reg.transport()?,
        format!("{}/kiln/runtime:fixture", plain.host()),
        &reg.host(),
    )?;
    env.registry = env.registry.with_insecure(&plain.host());
    let auth = |user: &str, password: &str| AuthConfig {
        username: user.into(),
        password: Some(password.into()),
    };
    let req = ConvertRequest {
        input_image_name: format!("{}/{input}:1", reg.host()),
        output_image_name: format!("{}/{output}:1", reg.host()),
        input_auth_config: Some(auth(SECOND_USER, SECOND_PASSWORD)),
        output_auth_config: Some(auth(TEST_USER, TEST_PASSWORD)),
        ..Default::default()
    };
    let result = convert(req, &env).await;
    let (repo, _) = output.split_once(':').unwrap_or((output, ""));
    let tagged = tag_exists(&reg.client(Some(me()))?, repo, "1").await
        || tag_exists(&reg.client(Some(other()))?, repo, "1").await;
    Ok((result, tagged))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_between_two_accounts_of_one_registry() -> R {
    require_tool!("docker-registry");
    // Same registry, so kiln tries to mount the input's layers; the output account
    // may not read the input's private repository, and the layers are streamed instead.
    let (result, tagged) = convert_across_accounts(&format!("{TEST_USER}/app-sgx")).await?;
    if let Err(e) = &result {
        panic!("conversion failed: {e}");
    }
    assert!(tagged, "no output tag");

    // Into the other account's namespace: 403 naming what was not granted, no tag.
    let (result, tagged) = convert_across_accounts(&format!("{SECOND_USER}/app-sgx")).await?;
    let Err(e) = result else {
        panic!("a conversion into another account's repository must fail")
    };
    let json = serde_json::to_string(&e)?;
    assert_eq!(e.status, 403, "{json}");
    assert!(
        json.contains("insufficient_scope") && json.contains("push"),
        "{json}"
    );
    assert!(
        !json.contains(TEST_PASSWORD) && !json.contains(SECOND_PASSWORD),
        "{json}"
    );
    assert!(!tagged, "a tag was written");
    Ok(())
}

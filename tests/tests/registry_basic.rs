//! Real-registry tests against `docker-registry` with htpasswd Basic auth.

use kiln_engine::image::registry::{Credentials, ErrorClass, UploadMode};
use kiln_tests::images::{push_image, simple_image, ImageFormat};
use kiln_tests::registry::{TestRegistry, TEST_PASSWORD, TEST_USER};
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn basic_auth_push_and_pull() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::basic()?;
    let client = reg.client(Some(TestRegistry::credentials()))?;
    let img = simple_image(ImageFormat::Oci, "amd64", "basic")?;
    push_image(
        &client,
        "auth/img",
        &img,
        Some("v1"),
        UploadMode::Monolithic,
    )
    .await?;
    let got = client.get_manifest("auth/img", "v1").await?;
    assert_eq!(got.bytes(), img.manifest.bytes());
    // chunked uploads carry the credentials on every PATCH too
    let img2 = simple_image(ImageFormat::Docker, "amd64", "basic-chunked")?;
    push_image(
        &client,
        "auth/img2",
        &img2,
        Some("v1"),
        UploadMode::Chunked { chunk_size: 50 },
    )
    .await?;
    assert_eq!(client.list_tags("auth/img2").await?, vec!["v1".to_string()]);
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_unauthorized_and_never_echoed() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::basic()?;
    let wrong = "wrong-Pw-9137-secret";
    let client = reg.client(Some(Credentials::new(TEST_USER, wrong)))?;
    let e = client.get_manifest("auth/img", "v1").await;
    let Err(e) = e else {
        panic!("a wrong password must fail")
    };
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    assert_eq!(e.http_status(), 401);
    for text in [e.to_string(), format!("{e:?}"), format!("{client:?}")] {
        assert!(!text.contains(wrong), "password leaked: {text}");
        assert!(!text.contains(TEST_PASSWORD), "password leaked: {text}");
    }
    // an upload with the wrong password fails the same way
    let img = simple_image(ImageFormat::Oci, "amd64", "x")?;
    let e = push_image(&client, "auth/img", &img, None, UploadMode::Monolithic).await;
    let Err(e) = e else { panic!("must fail") };
    assert_eq!(e.class(), ErrorClass::Unauthorized, "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
    Ok(())
}

#[tokio::test]
async fn no_credentials_is_unauthorized() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::basic()?;
    let client = reg.client(None)?;
    let e = client.ping().await;
    assert!(
        matches!(&e, Err(e) if e.class() == ErrorClass::Unauthorized),
        "{e:?}"
    );
    Ok(())
}

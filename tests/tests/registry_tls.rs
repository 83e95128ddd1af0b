//! Real-registry tests against `docker-registry` over HTTPS with a private CA.

use std::sync::Arc;

use kiln_engine::image::registry::{ErrorClass, RegistryError, UploadMode};
use kiln_engine::image::transport::TransportErrorKind;
use kiln_native::{HttpOptions, HttpTransport};
use kiln_tests::images::{push_image, simple_image, ImageFormat};
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn tls_with_private_ca_verified() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::tls()?;
    let client = reg.client(Some(TestRegistry::credentials()))?;
    assert!(client.base_url().starts_with("https://"));
    client.ping().await?;
    let img = simple_image(ImageFormat::Oci, "amd64", "tls")?;
    push_image(
        &client,
        "tls/img",
        &img,
        Some("v1"),
        UploadMode::Chunked { chunk_size: 100 },
    )
    .await?;
    assert_eq!(
        client.get_manifest("tls/img", "v1").await?.bytes(),
        img.manifest.bytes()
    );
    Ok(())
}

#[tokio::test]
async fn tls_ca_from_a_pem_file() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::tls()?;
    let opts = HttpOptions::default().with_ca_file(&reg.dir().join("ca.crt"))?;
    let client = reg.client_with(
        Arc::new(HttpTransport::with_options(opts)?),
        Some(TestRegistry::credentials()),
    );
    client.ping().await?;
    Ok(())
}

#[tokio::test]
async fn tls_without_the_ca_fails() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::tls()?;
    let client = reg.client_with(
        Arc::new(HttpTransport::new()?),
        Some(TestRegistry::credentials()),
    );
    let e = client.ping().await;
    let Err(e) = e else {
        panic!("an untrusted certificate must fail")
    };
    assert_eq!(e.class(), ErrorClass::Upstream, "{e}");
    assert!(
        matches!(&e, RegistryError::Transport { source, .. } if source.kind == TransportErrorKind::Tls),
        "{e:?}"
    );
    Ok(())
}

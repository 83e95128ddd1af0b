//! Limits of the input image in a real conversion (engine pipeline, docker-registry on
//! loopback, the fixture runtime): a hit is a 400 naming the layer and the limit, and
//! the output tag is never written.

use std::sync::Arc;

use kiln_engine::api::{ConvertRequest, ErrorType};
use kiln_engine::image::limits::ImageLimits;
use kiln_engine::image::registry::UploadMode;
use kiln_engine::pipeline::{convert, PipelineEnv};
use kiln_engine::sgx::signer::PrivateKeySigner;
use kiln_tests::images::{build_image, push_image, tag_exists, FileSpec, ImageFormat};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::HarnessError;

const KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_hits_are_400s_with_no_tag() -> Result<(), HarnessError> {
    let input = TestRegistry::plain()?;
    let output = TestRegistry::plain()?;
    let client = input.client(None)?;
    let mut sh = FileSpec::new("bin/sh", "#!fake shell\n");
    sh.mode = 0o755;
    let image = build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[
            vec![
                sh,
                FileSpec::new("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ],
            vec![
                FileSpec::new("opt/a", "a\n"),
                FileSpec::new("opt/b", "b\n"),
                FileSpec::new("opt/c", "c\n"),
            ],
        ],
    )?;
    push_image(&client, "app", &image, Some("1"), UploadMode::Monolithic).await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    let out_client = output.client(None)?;

    let cases: Vec<(&str, ImageLimits)> = vec![
        (
            "layer-entries=2",
            ImageLimits {
                layer_entries: 2,
                ..ImageLimits::default()
            },
        ),
        (
            "manifest-layers=1",
            ImageLimits {
                manifest_layers: 1,
                ..ImageLimits::default()
            },
        ),
        (
            "image-entries=4",
            ImageLimits {
                image_entries: 4,
                ..ImageLimits::default()
            },
        ),
        (
            "layer-bytes=2048",
            ImageLimits {
                layer_bytes: 2048,
                ..ImageLimits::default()
            },
        ),
    ];
    for (want, limits) in cases {
        let mut env = PipelineEnv::new(
            input.transport()?,
            format!("{}/kiln/runtime:fixture", input.host()),
        );
        env.registry = env
            .registry
            .with_insecure(&input.host())
            .with_insecure(&output.host());
        env.default_signer = Some(Arc::new(PrivateKeySigner::from_pem(KEY, None)?));
        env.limits = limits;
        let req = ConvertRequest {
            input_image_name: format!("{}/app:1", input.host()),
            output_image_name: format!("{}/app-sgx:1", output.host()),
            ..Default::default()
        };
        let e = match convert(req, &env).await {
            Ok(_) => panic!("{want}: converted"),
            Err(e) => e,
        };
        assert_eq!(e.error_type, ErrorType::BadRequest, "{want}: {e}");
        assert!(e.reason.contains(want), "{want}: {}", e.reason);
        if want != "manifest-layers=1" {
            assert!(
                e.reason.contains("sha256:"),
                "names the layer: {}",
                e.reason
            );
        }
        assert!(!tag_exists(&out_client, "app-sgx", "1").await, "{want}");
    }
    Ok(())
}

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

/// Pushes `app:1` (a fake shell and /etc/passwd, then a layer with one small file per
/// path of `second_layer`) and the fixture runtime to `client`'s registry.
async fn push_app(
    client: &kiln_engine::image::registry::RegistryClient,
    second_layer: &[&str],
) -> Result<(), HarnessError> {
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
            second_layer
                .iter()
                .map(|p| FileSpec::new(p, format!("{}\n", &p[p.len() - 1..])))
                .collect(),
        ],
    )?;
    push_image(client, "app", &image, Some("1"), UploadMode::Monolithic).await?;
    push_fixture_runtime(client, &RuntimeBinaries::placeholders()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_hits_are_400s_with_no_tag() -> Result<(), HarnessError> {
    let input = TestRegistry::plain()?;
    let output = TestRegistry::plain()?;
    let client = input.client(None)?;
    push_app(&client, &["opt/a", "opt/b", "opt/c"]).await?;
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

/// A conversion whose input registry sits behind the fault front.
async fn convert_through_faults(
    percent: u64,
) -> Result<
    (
        Result<kiln_engine::pipeline::ConvertOutcome, kiln_engine::api::ApiError>,
        Vec<kiln_engine::pipeline::Event>,
        u64,
        bool,
    ),
    HarnessError,
> {
    use kiln_engine::image::registry::RetryPolicy;
    use kiln_engine::pipeline::progress::RecordingProgress;
    use kiln_tests::fault_front::{faulted, FaultFront};
    let input = TestRegistry::plain()?;
    let output = TestRegistry::plain()?;
    let client = input.client(None)?;
    push_app(&client, &["opt/a"]).await?;
    // A seed whose first two connections are faulted, so retries certainly happen.
    let seed = (0u64..)
        .find(|s| faulted(*s, 0, percent) && faulted(*s, 1, percent))
        .unwrap_or(0);
    let front = FaultFront::start(input.port(), percent, seed)?;
    let progress = Arc::new(RecordingProgress::default());
    let mut env = PipelineEnv::new(
        input.transport()?,
        format!("{}/kiln/runtime:fixture", front.host()),
    );
    env.registry = env
        .registry
        .with_insecure(&front.host())
        .with_insecure(&output.host());
    env.default_signer = Some(Arc::new(PrivateKeySigner::from_pem(KEY, None)?));
    env.progress = progress.clone();
    env.timer = Some(Arc::new(kiln_native::TokioTimer));
    env.retry = RetryPolicy {
        base_delay_ms: 5,
        max_delay_ms: 50,
        ..RetryPolicy::default()
    };
    let req = ConvertRequest {
        input_image_name: format!("{}/app:1", front.host()),
        output_image_name: format!("{}/app-sgx:1", output.host()),
        ..Default::default()
    };
    let result = convert(req, &env).await;
    let tagged = tag_exists(&output.client(None)?, "app-sgx", "1").await;
    Ok((result, progress.events(), front.faults(), tagged))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_registry_faults_are_retried_and_visible() -> Result<(), HarnessError> {
    let (result, events, faults, tagged) = convert_through_faults(20).await?;
    if let Err(e) = &result {
        panic!("conversion failed through 20% faults: {e}");
    }
    let retries = events
        .iter()
        .filter(|e| matches!(e, kiln_engine::pipeline::Event::Retry { .. }))
        .count() as u64;
    assert!(faults >= 2, "faults {faults}");
    assert_eq!(
        retries, faults,
        "every fault is one retry event: {events:?}"
    );
    assert!(tagged);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_registry_faults_fail_clearly_with_no_tag() -> Result<(), HarnessError> {
    let (result, events, faults, tagged) = convert_through_faults(100).await?;
    let e = match result {
        Ok(_) => panic!("converted through 100% faults"),
        Err(e) => e,
    };
    assert_eq!(e.status, 502, "{e}");
    assert!(e.reason.contains("input image"), "{}", e.reason);
    let retries = events
        .iter()
        .filter(|e| matches!(e, kiln_engine::pipeline::Event::Retry { .. }))
        .count();
    // Five attempts of the first request, four retries between them.
    assert_eq!((faults, retries), (5, 4), "{events:?}");
    assert!(!tagged);
    Ok(())
}

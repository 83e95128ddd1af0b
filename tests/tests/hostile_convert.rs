//! Limits of the input image in a real conversion (engine pipeline, docker-registry on
//! loopback, the fixture runtime): a hit is a 400 naming the layer and the limit, and
//! the output tag is never written.

use kiln_engine::api::ErrorType;
use kiln_engine::image::limits::ImageLimits;
use kiln_engine::image::registry::UploadMode;
use kiln_tests::fault_front::{convert_fronted, faulted, FaultFront, FrontedRun};
use kiln_tests::images::{push_image, shell_app_image, FileSpec};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::HarnessError;

/// Pushes `app:1` (a fake shell and /etc/passwd, then a layer with one small file per
/// path of `second_layer`) and the fixture runtime to `client`'s registry.
async fn push_app(
    client: &kiln_engine::image::registry::RegistryClient,
    second_layer: &[&str],
) -> Result<(), HarnessError> {
    let image = shell_app_image(
        "#!fake shell\n",
        second_layer
            .iter()
            .map(|p| FileSpec::new(p, format!("{}\n", &p[p.len() - 1..])))
            .collect(),
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

    // Each case is one `--limit` setting, named in the error as it is written here.
    for want in [
        "layer-entries=2",
        "manifest-layers=1",
        "image-entries=4",
        "layer-bytes=2048",
    ] {
        let mut limits = ImageLimits::default();
        limits.apply(want).map_err(|e| format!("{want}: {e}"))?;
        let (in_host, out_host) = (input.host(), output.host());
        let run = convert_fronted(
            input.transport()?,
            &in_host,
            &out_host,
            &in_host,
            &output,
            |env, _| env.limits = limits,
        )
        .await?;
        let e = match run.result {
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
        assert!(!run.tagged, "{want}");
    }
    Ok(())
}

/// A conversion whose input registry sits behind the fault front (faulting `percent` %
/// of the requests); with the faults it injected.
async fn convert_through_faults(percent: u64) -> Result<(FrontedRun, u64), HarnessError> {
    let input = TestRegistry::plain()?;
    let output = TestRegistry::plain()?;
    let client = input.client(None)?;
    push_app(&client, &["opt/a"]).await?;
    // A seed whose first two connections are faulted, so retries certainly happen.
    let seed = (0u64..)
        .find(|s| faulted(*s, 0, percent) && faulted(*s, 1, percent))
        .unwrap_or(0);
    let front = FaultFront::start(input.port(), percent, seed)?;
    let (in_host, out_host) = (front.host(), output.host());
    let run = convert_fronted(
        input.transport()?,
        &in_host,
        &out_host,
        &in_host,
        &output,
        |_, _| {},
    )
    .await?;
    Ok((run, front.faults()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_registry_faults_are_retried_and_visible() -> Result<(), HarnessError> {
    let (run, faults) = convert_through_faults(20).await?;
    run.ok("through 20% faults");
    assert!(faults >= 2, "faults {faults}");
    assert_eq!(
        run.retries(),
        faults,
        "every fault is one retry event: {:?}",
        run.events
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_registry_faults_fail_clearly_with_no_tag() -> Result<(), HarnessError> {
    let (run, faults) = convert_through_faults(100).await?;
    let e = match &run.result {
        Ok(_) => panic!("converted through 100% faults"),
        Err(e) => e,
    };
    assert_eq!(e.status, 502, "{e}");
    assert!(e.reason.contains("input image"), "{}", e.reason);
    // Five attempts of the first request, four retries between them.
    assert_eq!((faults, run.retries()), (5, 4), "{:?}", run.events);
    assert!(!run.tagged);
    Ok(())
}

//! Registry quirks and broken blob bodies, through the fault front
//! (`kiln_tests::fault_front`) before a real docker-registry: real conversions (engine
//! pipeline, native transport, the fixture runtime) that must succeed, with the front's
//! counters showing each quirk really happened. Nothing here measures time: stalls are
//! cut by the transport's idle timeout (its configuration), and the assertions count
//! requests, bytes and events.

use std::sync::Arc;
use std::time::Duration;

use kiln_engine::api::AuthConfig;
use kiln_engine::image::registry::{RegistryClient, UploadMode};
use kiln_engine::image::transport::Transport;
use kiln_native::{HttpOptions, HttpTransport};
use kiln_tests::fault_front::{
    convert_fronted, BlobBody, FaultFront, FrontOptions, FrontStats, FrontedRun, LocationStyle,
};
use kiln_tests::images::{noise, push_image, shell_app_image, FileSpec};
use kiln_tests::registry::{TestRegistry, TEST_PASSWORD, TEST_USER};
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::HarnessError;

/// Pushes `app:1` (a fake shell, /etc/passwd, a second layer of 200 KiB of
/// incompressible bytes, so bodies are big enough to cut) to `client`'s registry.
async fn push_app(client: &RegistryClient) -> Result<(), HarnessError> {
    let image = shell_app_image(
        "#!fake shell\n",
        vec![FileSpec::new(
            "opt/noise.bin",
            noise(200 * 1024, 0x1234_5678_9abc_def0),
        )],
    )?;
    push_image(client, "app", &image, Some("1"), UploadMode::Monolithic).await?;
    Ok(())
}

/// Where the front sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

fn stat(c: &std::sync::atomic::AtomicU64) -> u64 {
    FrontStats::get(c)
}

/// Converts `app:1` from a plain (or, with `basic_input`, a Basic-auth) registry into a
/// plain one, the front (with `options`) before `side`; the runtime image lives on the
/// output registry. `transport` is the native transport used (its idle timeout matters
/// for stalls).
async fn convert_through(
    side: Side,
    mut options: FrontOptions,
    basic_input: bool,
    upload_mode: UploadMode,
    transport: Arc<dyn Transport>,
) -> Result<(FrontedRun, FaultFront), HarnessError> {
    let input = if basic_input {
        TestRegistry::basic()?
    } else {
        TestRegistry::plain()?
    };
    let output = TestRegistry::plain()?;
    let creds = basic_input.then(TestRegistry::credentials);
    push_app(&input.client(creds)?).await?;
    push_fixture_runtime(&output.client(None)?, &RuntimeBinaries::placeholders()).await?;
    let fronted = match side {
        Side::Input => &input,
        Side::Output => &output,
    };
    options.storage_root = Some(fronted.storage_root());
    let front = FaultFront::with_options(fronted.port(), options)?;
    let (in_host, out_host) = match side {
        Side::Input => (front.host(), output.host()),
        Side::Output => (input.host(), front.host()),
    };
    let run = convert_fronted(
        transport,
        &in_host,
        &out_host,
        &out_host,
        &output,
        |env, req| {
            env.upload_mode = upload_mode;
            if basic_input {
                req.input_auth_config = Some(AuthConfig {
                    username: TEST_USER.into(),
                    password: Some(TEST_PASSWORD.into()),
                });
            }
        },
    )
    .await?;
    Ok((run, front))
}

/// [`convert_through`] from a plain input, with monolithic uploads over the native
/// transport.
async fn through(
    side: Side,
    options: FrontOptions,
) -> Result<(FrontedRun, FaultFront), HarnessError> {
    convert_through(side, options, false, UploadMode::Monolithic, native()?).await
}

fn native() -> Result<Arc<dyn Transport>, HarnessError> {
    Ok(Arc::new(HttpTransport::with_options(
        HttpOptions::default(),
    )?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_blobs_never_carry_the_registry_credentials() -> Result<(), HarnessError> {
    let (run, front) = convert_through(
        Side::Input,
        FrontOptions {
            redirect_blobs: true,
            ..FrontOptions::default()
        },
        true,
        UploadMode::Monolithic,
        native()?,
    )
    .await?;
    run.ok("redirected blobs");
    let s = front.stats();
    // The config and both layers.
    assert!(stat(&s.redirects) >= 3, "redirects {}", stat(&s.redirects));
    assert_eq!(stat(&s.redirected_gets), stat(&s.redirects));
    assert_eq!(stat(&s.bad_signatures), 0);
    assert_eq!(
        stat(&s.redirected_with_authorization),
        0,
        "Authorization followed a redirect to another host"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_locations_in_every_form() -> Result<(), HarnessError> {
    for style in [
        LocationStyle::Relative,
        LocationStyle::RelativeNoQuery,
        LocationStyle::Absolute,
        LocationStyle::AbsoluteNoQuery,
    ] {
        for mode in [
            UploadMode::Monolithic,
            UploadMode::Chunked {
                chunk_size: 64 * 1024,
            },
        ] {
            let (run, front) = convert_through(
                Side::Output,
                FrontOptions {
                    location: style,
                    ..FrontOptions::default()
                },
                false,
                mode,
                native()?,
            )
            .await?;
            let what = format!("{style:?} {mode:?}");
            run.ok(&what);
            assert!(stat(&front.stats().locations_rewritten) >= 3, "{what}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_instead_of_accepted_and_no_content_digest() -> Result<(), HarnessError> {
    let quirks = FrontOptions {
        upload_status_swap: true,
        strip_content_digest: true,
        ..FrontOptions::default()
    };
    for mode in [
        UploadMode::Monolithic,
        UploadMode::Chunked {
            chunk_size: 64 * 1024,
        },
    ] {
        let (run, front) =
            convert_through(Side::Output, quirks.clone(), false, mode, native()?).await?;
        run.ok(&format!("{mode:?}"));
        let s = front.stats();
        assert!(stat(&s.statuses_swapped) >= 4, "{mode:?}");
        assert!(stat(&s.digests_stripped) >= 3, "{mode:?}");
    }
    // The input side without Docker-Content-Digest: manifests and blobs are verified
    // against the digests kiln computes.
    let (run, front) = through(
        Side::Input,
        FrontOptions {
            strip_content_digest: true,
            ..FrontOptions::default()
        },
    )
    .await?;
    run.ok("input without Docker-Content-Digest");
    assert!(stat(&front.stats().digests_stripped) >= 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_head_refused_falls_back_to_get() -> Result<(), HarnessError> {
    let reg = TestRegistry::plain()?;
    push_app(&reg.client(None)?).await?;
    let truth = reg
        .client(None)?
        .head_manifest("app", "1")
        .await?
        .and_then(|i| i.digest)
        .ok_or("no digest from the registry itself")?;
    for status in [405, 404] {
        let front = FaultFront::with_options(
            reg.port(),
            FrontOptions {
                manifest_head_status: Some(status),
                ..FrontOptions::default()
            },
        )?;
        let client = RegistryClient::new(
            native()?,
            &front.host(),
            kiln_engine::image::registry::ClientOptions {
                insecure: true,
                credentials: None,
            },
        );
        let info = client.head_manifest("app", "1").await?;
        let info = info.ok_or(format!("{status}: manifest not found"))?;
        assert_eq!(info.digest.as_ref(), Some(&truth), "{status}");
        assert!(info.size.is_some_and(|s| s > 0), "{status}");
        assert_eq!(client.head_manifest("app", "nope").await?, None, "{status}");
        assert_eq!(
            stat(&front.stats().manifest_heads_refused),
            2,
            "{status}: HEAD was asked first"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_blob_bodies_resume_with_range_requests() -> Result<(), HarnessError> {
    for ignore_range in [false, true] {
        let (run, front) = through(
            Side::Input,
            FrontOptions {
                blob_body: BlobBody::CutOnce,
                ignore_range,
                ..FrontOptions::default()
            },
        )
        .await?;
        let what = format!("ignore_range {ignore_range}");
        run.ok(&what);
        let s = front.stats();
        let cuts = stat(&s.cuts);
        // The config and both layers.
        assert!(cuts >= 3, "{what}: cuts {cuts}");
        assert_eq!(stat(&s.range_requests), cuts, "{what}: one resume per cut");
        let ignored = if ignore_range { cuts } else { 0 };
        assert_eq!(stat(&s.ranges_ignored), ignored, "{what}");
        assert_eq!(run.retries(), cuts, "{what}: {:?}", run.events);
        let resumed = run.retries_of("resuming at byte");
        assert_eq!(resumed, cuts, "{what}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_blob_bodies_are_cut_by_the_idle_timeout_and_resumed() -> Result<(), HarnessError> {
    // The idle timeout is the transport's configuration (HttpOptions::read_timeout);
    // nothing below measures time. Only the fronted input gets the short one, so a
    // registry slow to answer an upload on a loaded machine cannot fail the test.
    let transport: Arc<dyn Transport> = Arc::new(ShortIdleForFront {
        short: HttpTransport::with_options(HttpOptions {
            read_timeout: Duration::from_secs(2),
            ..HttpOptions::default()
        })?,
        default: HttpTransport::with_options(HttpOptions::default())?,
    });
    let (run, front) = convert_through(
        Side::Input,
        FrontOptions {
            blob_body: BlobBody::StallOnce,
            ..FrontOptions::default()
        },
        false,
        UploadMode::Monolithic,
        transport,
    )
    .await?;
    run.ok("stalls");
    let s = front.stats();
    let stalls = stat(&s.stalls);
    assert!(stalls >= 3, "stalls {stalls}");
    // At least one resume per stall (a request slow on a loaded machine may add one).
    assert!(stat(&s.range_requests) >= stalls);
    let resumed = run.retries_of("resuming at byte");
    assert!(resumed >= stalls, "{:?}", run.events);
    Ok(())
}

/// The native transport with a short idle timeout for the input's blob GETs (through
/// the fault front, repository `app`) and the default elsewhere.
struct ShortIdleForFront {
    short: HttpTransport,
    default: HttpTransport,
}

#[async_trait::async_trait]
impl Transport for ShortIdleForFront {
    async fn send(
        &self,
        request: kiln_engine::image::transport::Request,
    ) -> Result<
        kiln_engine::image::transport::Response,
        kiln_engine::image::transport::TransportError,
    > {
        // Only blob GETs go to the input (the front); everything else the default way.
        if request.method == kiln_engine::image::transport::Method::Get
            && request.url.contains("/app/blobs/")
        {
            self.short.send(request).await
        } else {
            self.default.send(request).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_cut_every_time_fail_clearly_with_no_tag() -> Result<(), HarnessError> {
    let (run, front) = through(
        Side::Input,
        FrontOptions {
            blob_body: BlobBody::CutAlways,
            ..FrontOptions::default()
        },
    )
    .await?;
    let e = match &run.result {
        Ok(_) => panic!("converted although every blob body is cut"),
        Err(e) => e,
    };
    assert_eq!(e.status, 502, "{e}");
    assert!(e.reason.contains("input image"), "{}", e.reason);
    assert!(!run.tagged);
    // Each cut blob is tried at most max_tries (5) times.
    let cuts = stat(&front.stats().cuts);
    assert!((5..=15).contains(&cuts), "cuts {cuts}");
    Ok(())
}

/// Reads every blob of `app-sgx:1` back from `reg` (each stream verifies its digest).
async fn output_is_whole(reg: &TestRegistry) -> Result<(), HarnessError> {
    use futures_util::StreamExt;
    let client = reg.client(None)?;
    let m = client
        .get_manifest("app-sgx", "1")
        .await?
        .image_manifest()?;
    let mut descs = m.layers().clone();
    descs.push(m.config().clone());
    for d in descs {
        let digest = kiln_engine::image::reference::Digest::try_from(d.digest())?;
        let mut s = client.get_blob("app-sgx", &digest, Some(d.size())).await?;
        while let Some(chunk) = s.next().await {
            chunk?;
        }
    }
    Ok(())
}

/// The upload sessions the registry still holds open for `repository`: docker-registry
/// keeps one directory per session under `_uploads`, with `startedat` and `data` until
/// the session is finished or cancelled (a cancelled one may keep an empty `hashstates`
/// behind, written as its writer closes).
fn open_upload_sessions(reg: &TestRegistry, repository: &str) -> usize {
    let dir = reg
        .storage_root()
        .join("docker/registry/v2/repositories")
        .join(repository)
        .join("_uploads");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("startedat").exists() || e.path().join("data").exists())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_start_over_in_new_sessions() -> Result<(), HarnessError> {
    for mode in [
        UploadMode::Monolithic,
        UploadMode::Chunked {
            chunk_size: 64 * 1024,
        },
    ] {
        // The first three PATCH/PUT requests fail: the two teed input layers' (each
        // then copied again from the input into a new session) and one more (a
        // restarted copy, or the kiln layer's or config's, pushed from memory).
        let output = TestRegistry::plain()?;
        let (run, front) = convert_into(
            &output,
            FrontOptions {
                upload_faults: 3,
                ..FrontOptions::default()
            },
            mode,
        )
        .await?;
        let what = format!("{mode:?}");
        run.ok(&what);
        let s = front.stats();
        assert_eq!(stat(&s.upload_faults), 3, "{what}");
        let restarts = run.retries_of("in a new session");
        assert_eq!(restarts, 3, "{what}: {:?}", run.events);
        output_is_whole(&output).await?;
        // Each failed session was cancelled, none left for the registry to expire.
        assert_eq!(open_upload_sessions(&output, "app-sgx"), 0, "{what}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_failing_every_time_fail_clearly_with_no_tag() -> Result<(), HarnessError> {
    let output = TestRegistry::plain()?;
    let (run, front) = convert_into(
        &output,
        FrontOptions {
            upload_faults: u64::MAX,
            ..FrontOptions::default()
        },
        UploadMode::Monolithic,
    )
    .await?;
    let e = match &run.result {
        Ok(_) => panic!("converted although every upload fails"),
        Err(e) => e,
    };
    assert_eq!(e.status, 502, "{e}");
    assert!(e.reason.contains("output image"), "{}", e.reason);
    assert!(!run.tagged);
    // Each upload is tried at most max_tries (5) times: the two teed layers.
    let faults = stat(&front.stats().upload_faults);
    assert!((5..=10).contains(&faults), "upload faults {faults}");
    assert_eq!(open_upload_sessions(&output, "app-sgx"), 0);
    Ok(())
}

/// Like [`convert_through`] with the front before `output` (given, so the test can
/// read it afterwards).
async fn convert_into(
    output: &TestRegistry,
    options: FrontOptions,
    upload_mode: UploadMode,
) -> Result<(FrontedRun, FaultFront), HarnessError> {
    let input = TestRegistry::plain()?;
    push_app(&input.client(None)?).await?;
    push_fixture_runtime(&output.client(None)?, &RuntimeBinaries::placeholders()).await?;
    let front = FaultFront::with_options(output.port(), options)?;
    let run = convert_fronted(
        native()?,
        &input.host(),
        &front.host(),
        &front.host(),
        output,
        |env, _| env.upload_mode = upload_mode,
    )
    .await?;
    Ok((run, front))
}

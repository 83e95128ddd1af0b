//! The conversion pipeline (engine::pipeline::convert) against real registries on
//! loopback, with the fixture runtime image (placeholder executables: these images are
//! converted and inspected, not run; tests/tests/convert_e2e.rs runs them).

use std::sync::Arc;

use kiln_engine::api::{ConvertRequest, ErrorType, SdkmsKey, SigningKey};
use kiln_engine::image::cache::{LayerCacheStore, MemoryCacheStore};
use kiln_engine::image::registry::{RegistryClient, UploadMode};
use kiln_engine::pipeline::progress::{BlobPush, RecordingProgress};
use kiln_engine::pipeline::{convert, ConvertOutcome, Event, PipelineEnv};
use kiln_engine::sgx::signer::PrivateKeySigner;
use kiln_tests::images::{push_image, shell_app_image, tag_exists, FileSpec, TestImage};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::{require_tool, HarnessError};

const KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");

fn app_image(seed: &str) -> Result<TestImage, HarnessError> {
    shell_app_image(
        &format!("#!fake shell {seed}\n"),
        vec![FileSpec::new("opt/data", format!("data {seed}\n"))],
    )
}

struct Setup {
    input: TestRegistry,
    output: TestRegistry,
    cache: Arc<MemoryCacheStore>,
    progress: Arc<RecordingProgress>,
}

async fn setup() -> Result<Setup, HarnessError> {
    let input = TestRegistry::plain()?;
    // Same-registry tests convert into `input` and leave `output` unused.
    let output = TestRegistry::plain()?;
    let client = input.client(None)?;
    push_image(
        &client,
        "app",
        &app_image("one")?,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    push_fixture_runtime(&client, &RuntimeBinaries::placeholders()).await?;
    Ok(Setup {
        input,
        output,
        cache: Arc::new(MemoryCacheStore::new()),
        progress: Arc::new(RecordingProgress::default()),
    })
}

fn env(s: &Setup) -> Result<PipelineEnv, HarnessError> {
    let mut env = PipelineEnv::new(
        s.input.transport()?,
        format!("{}/kiln/runtime:fixture", s.input.host()),
    );
    env.registry = env
        .registry
        .with_insecure(&s.input.host())
        .with_insecure(&s.output.host());
    env.cache = s.cache.clone() as Arc<dyn LayerCacheStore>;
    env.default_signer = Some(Arc::new(PrivateKeySigner::from_pem(KEY, None)?));
    env.progress = s.progress.clone();
    Ok(env)
}

fn request(input: &str, output: &str) -> ConvertRequest {
    ConvertRequest {
        input_image_name: input.into(),
        output_image_name: output.into(),
        ..Default::default()
    }
}

fn blob_events(p: &RecordingProgress) -> Vec<BlobPush> {
    p.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Blob { how, .. } => Some(how),
            _ => None,
        })
        .collect()
}

/// Reads the pushed image back with the engine's verification (what `kiln inspect` and
/// `kiln verify` run): every check passes, and the recomputed measurements, the labels and
/// the SIGSTRUCTs say exactly what the conversion's response said.
async fn read_back_matches(
    client: &RegistryClient,
    image: &str,
    r: &kiln_engine::api::ConvertResponse,
) -> Result<(), HarnessError> {
    use kiln_engine::image::manifest::PlatformSpec;
    use kiln_engine::image::reference::Reference;
    use kiln_engine::verify::{inspect, read_image, verify, Expectations, RegistryBlobs};
    let reference = Reference::parse(image)?;
    let resolved = client
        .resolve_image(&reference, &PlatformSpec::linux_amd64())
        .await?;
    let contents = read_image(
        &resolved,
        &RegistryBlobs::new(client, reference.repository()),
    )
    .await?;
    let report = verify(
        &contents,
        &Expectations {
            mrenclave: Some(r.mrenclave.clone()),
            mrsigner: Some(r.mrsigner.clone()),
        },
    );
    assert!(report.passed, "{report:#?}");
    let recomputed: Vec<&str> = report.mrenclaves.iter().map(|(_, m)| m.as_str()).collect();
    assert!(recomputed.contains(&r.mrenclave.as_str()), "{recomputed:?}");
    assert!(
        recomputed.contains(&r.mrenclave2.as_str()),
        "{recomputed:?}"
    );
    assert_eq!(report.mrsigner.as_deref(), Some(r.mrsigner.as_str()));
    assert_eq!(report.manifest_digest, r.digest);
    let info = inspect(&contents);
    assert_eq!(info.mrenclave.as_deref(), Some(r.mrenclave.as_str()));
    assert_eq!(info.mrenclave2.as_deref(), Some(r.mrenclave2.as_str()));
    assert_eq!(info.mrsigner.as_deref(), Some(r.mrsigner.as_str()));
    assert_eq!(info.isvprodid, Some(r.isvprodid.to_string()));
    assert_eq!(info.isvsvn, Some(r.isvsvn.to_string()));
    assert_eq!(info.manifest_digest, r.digest);
    assert_eq!(info.enclaves.len(), 2, "{info:#?}");
    for enclave in &info.enclaves {
        let view = enclave.sigstruct.as_ref().ok_or("no SIGSTRUCT")?;
        assert_eq!(view.mrsigner, r.mrsigner);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converts_across_registries_reproducibly_and_warm() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let env = env(&s)?;
    let input = format!("{}/app:1", s.input.host());
    let output = format!("{}/app-sgx:1", s.output.host());
    let first: ConvertOutcome = convert(request(&input, &output), &env).await?;
    let r = &first.response;
    assert_eq!(r.new_image, output);
    assert_eq!(r.mrenclave.len(), 64);
    assert_eq!(r.mrenclave2.len(), 64);
    assert_ne!(r.mrenclave, r.mrenclave2);
    assert_eq!(r.image_sha.len(), 12);
    assert_eq!(r.mem_size, 256 << 20);
    assert_eq!(first.layers_cached, 0);
    // Labels say what the response says.
    let cfg: serde_json::Value = serde_json::from_slice(&first.config)?;
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["dev.kiln.mrenclave"], r.mrenclave.as_str());
    assert_eq!(labels["dev.kiln.mrenclave2"], r.mrenclave2.as_str());
    assert_eq!(labels["dev.kiln.mrsigner"], r.mrsigner.as_str());
    assert_eq!(labels["dev.kiln.isvprodid"], "0");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/opt/kiln/runtime/kiln-launcher"])
    );
    let manifest: serde_json::Value = serde_json::from_slice(&first.manifest)?;
    let sizes: u64 = manifest["layers"]
        .as_array()
        .map(|l| l.iter().filter_map(|d| d["size"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(r.image_size, sizes + first.config.len() as u64);
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(4));
    assert!(r.digest.starts_with("sha256:"));
    // Tag points at the digest.
    let out = s.output.client(None)?;
    let info = out.head_manifest("app-sgx", "1").await?.ok_or("no tag")?;
    assert_eq!(info.digest.map(|d| d.to_string()), Some(r.digest.clone()));
    // Across registries: every input and runtime layer streamed across, then uploaded.
    let hows = blob_events(&s.progress);
    assert_eq!(
        hows.iter().filter(|h| **h == BlobPush::Copied).count(),
        3,
        "{hows:?}"
    );

    // What kiln inspect / kiln verify read back from the pushed image equals the response.
    read_back_matches(&out, &output, r).await?;

    // Again, warm: same digest, no layer fetched, nothing re-uploaded.
    let before = s.progress.events().len();
    let second = convert(request(&input, &output), &env).await?;
    assert_eq!(second.response, first.response);
    assert_eq!(second.manifest, first.manifest);
    assert_eq!(second.layers_cached, 2);
    let later: Vec<Event> = s.progress.events().split_off(before);
    assert!(
        !later.iter().any(|e| matches!(e, Event::LayerBytes { .. })),
        "{later:?}"
    );
    assert!(later
        .iter()
        .all(|e| !matches!(e, Event::Blob { how, .. } if *how != BlobPush::Present)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_registry_mounts() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let env = env(&s)?;
    let input = format!("{}/app:1", s.input.host());
    let output = format!("{}/app-sgx:1", s.input.host());
    convert(request(&input, &output), &env).await?;
    let hows = blob_events(&s.progress);
    assert_eq!(
        hows.iter().filter(|h| **h == BlobPush::Mounted).count(),
        3,
        "{hows:?}"
    );
    assert!(!hows.contains(&BlobPush::Copied));
    Ok(())
}

/// With the native scan driver, a teed layer's upload outlives its scan (it runs on a
/// task of its own while manifests are built and signed): the pushed image still has
/// every layer in the output registry before its manifest and tag, and reads back as
/// converted; the same request with scans on the caller's task gives the same digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threaded_scans_upload_in_the_background() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let mut env = env(&s)?;
    env.scans = Arc::new(kiln_native::ThreadedScans::default());
    env.cache = Arc::new(MemoryCacheStore::new());
    let input = format!("{}/app:1", s.input.host());
    let output = format!("{}/app-sgx:1", s.output.host());
    let first = convert(request(&input, &output), &env).await?;
    let hows = blob_events(&s.progress);
    assert_eq!(
        hows.iter().filter(|h| **h == BlobPush::Copied).count(),
        3,
        "{hows:?}"
    );
    let out = s.output.client(None)?;
    let manifest: serde_json::Value = serde_json::from_slice(&first.manifest)?;
    for layer in manifest["layers"].as_array().ok_or("no layers")? {
        let digest = kiln_engine::image::reference::Digest::parse(
            layer["digest"].as_str().ok_or("no digest")?,
        )?;
        assert!(
            out.blob_exists("app-sgx", &digest).await?.is_some(),
            "{digest} missing"
        );
    }
    read_back_matches(&out, &output, &first.response).await?;

    // Scans on the caller's task (uploads joined with them), cold again: same image.
    let sequential = {
        let mut e = env;
        e.scans = Arc::new(kiln_engine::pipeline::env::SequentialScans);
        e.cache = Arc::new(MemoryCacheStore::new());
        e
    };
    let second = convert(request(&input, &output), &sequential).await?;
    assert_eq!(second.response.digest, first.response.digest);
    Ok(())
}

/// An image whose second layer is an uncompressed tar with a 64 MiB file (a plain tar
/// keeps the debug-build test fast: nothing to gzip or gunzip).
fn big_plain_image() -> Result<TestImage, HarnessError> {
    let big = vec![FileSpec::new(
        "opt/big",
        kiln_tests::images::noise(64 << 20, 5),
    )];
    let mut image = app_image("big")?;
    image.layers[1] = kiln_tests::images::Blob::new(
        "application/vnd.oci.image.layer.v1.tar",
        kiln_tests::images::tar_of(&big)?,
    );
    let mut cfg: serde_json::Value = serde_json::from_slice(&image.config.data)?;
    cfg["rootfs"]["diff_ids"][1] = serde_json::json!(image.layers[1].digest.to_string());
    image.set_config(&cfg)?;
    Ok(image)
}

/// The output registry dies while a layer is being teed into it: with either scan
/// driver (upload joined with the scan, or in the background) the conversion fails
/// naming the output registry, and stops reading the layer instead of scanning the
/// rest of it for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_registry_dying_mid_upload_fails_the_conversion() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let image = big_plain_image()?;
    push_image(
        &s.input.client(None)?,
        "big",
        &image,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    let big = image.layers[1].digest.to_string();
    let size = image.layers[1].data.len() as u64;
    for threaded in [false, true] {
        let out = TestRegistry::plain()?;
        let progress = Arc::new(RecordingProgress::default());
        let mut env = env(&s)?;
        env.registry = env.registry.with_insecure(&out.host());
        env.cache = Arc::new(MemoryCacheStore::new());
        env.progress = progress.clone();
        if threaded {
            env.scans = Arc::new(kiln_native::ThreadedScans::default());
        }
        let read = {
            let (progress, big) = (progress.clone(), big.clone());
            move || {
                progress
                    .events()
                    .iter()
                    .filter_map(|e| match e {
                        Event::LayerBytes { digest, bytes } if *digest == big => Some(*bytes),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
            }
        };
        // Kill the output registry once 4 MiB of the big layer went through.
        let pid = out.pid();
        let killer = {
            let read = read.clone();
            tokio::spawn(async move {
                while read() < 4 << 20 {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            })
        };
        let output = format!("{}/big-sgx:1", out.host());
        let e = convert(request(&format!("{}/big:1", s.input.host()), &output), &env)
            .await
            .err()
            .ok_or("converted into a registry that died")?;
        killer.abort();
        assert!(e.reason.contains(&out.host()), "threaded {threaded}: {e}");
        // Killed after 4 MiB; reading on to the end of the 64 MiB would be the waste.
        assert!(
            read() < size / 2,
            "threaded {threaded}: read {} of {size} bytes ({e})",
            read()
        );
    }
    Ok(())
}

/// A layer blob changed behind the input registry's back (same length, other bytes):
/// the conversion fails naming the layer, whether the layer is teed to another registry
/// (its upload joined with the scan, or running in the background) or mounted, and
/// nothing is tagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_layer_fails_the_conversion() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let threaded = {
        let mut e = env(&s)?;
        e.scans = Arc::new(kiln_native::ThreadedScans::default());
        e
    };
    let env = env(&s)?;
    let layer = &app_image("one")?.layers[0];
    let stored = s
        .input
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&layer.digest.hex()[..2])
        .join(layer.digest.hex())
        .join("data");
    let mut bytes = std::fs::read(&stored)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, &bytes)?;
    for (registry, env) in [(&s.output, &env), (&s.output, &threaded), (&s.input, &env)] {
        let output = format!("{}/app-sgx:1", registry.host());
        let e = convert(request(&format!("{}/app:1", s.input.host()), &output), env)
            .await
            .err()
            .ok_or("converted an image with a tampered layer")?;
        assert!(e.reason.contains(layer.digest.hex()), "{e}");
        assert!(!tag_exists(&registry.client(None)?, "app-sgx", "1").await);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_leave_no_tag() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let env = env(&s)?;
    let out = s.output.client(None)?;
    let output = format!("{}/app-sgx:1", s.output.host());

    let e = convert(
        request(&format!("{}/nope:1", s.input.host()), &output),
        &env,
    )
    .await
    .err()
    .ok_or("converted a missing image")?;
    assert_eq!(e.status, 404, "{e}");
    assert!(!tag_exists(&out, "app-sgx", "1").await);

    let mut req = request(&format!("{}/app:1", s.input.host()), &output);
    req.entrypoint = Some(vec!["/no/such/program".into()]);
    let e = convert(req, &env)
        .await
        .err()
        .ok_or("bad entrypoint accepted")?;
    assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
    assert!(!tag_exists(&out, "app-sgx", "1").await);

    let mut req = request(&format!("{}/app:1", s.input.host()), &output);
    req.signing_key = Some(SigningKey::Sdkms(SdkmsKey {
        name: "k".into(),
        api_key: "secret-api-key".into(),
    }));
    let e = convert(req, &env).await.err().ok_or("sdkms accepted")?;
    assert_eq!(e.status, 400);
    assert!(
        e.reason.contains("sdkms") && !e.reason.contains("secret-api-key"),
        "{e}"
    );

    let mut req = request(&format!("{}/app:1", s.input.host()), &output);
    req.isvprodid = Some(70000);
    let e = convert(req, &env).await.err().ok_or("isvprodid accepted")?;
    assert_eq!(e.status, 400);
    assert!(e.reason.contains("isvprodid"), "{e}");
    assert!(!tag_exists(&out, "app-sgx", "1").await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_401_and_never_quoted() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let s = setup().await?;
    let locked = TestRegistry::basic()?;
    let env = {
        let mut e = env(&s)?;
        e.registry = e.registry.with_insecure(&locked.host());
        e
    };
    let secret = "hunter2-very-secret";
    let auth = kiln_engine::api::AuthConfig {
        username: "nobody".into(),
        password: Some(secret.into()),
    };
    // Input side: wrong password on a basic-auth registry.
    let mut req = request(
        &format!("{}/app:1", locked.host()),
        &format!("{}/out:1", s.output.host()),
    );
    req.input_auth_config = Some(auth.clone());
    let e = convert(req, &env)
        .await
        .err()
        .ok_or("wrong credentials accepted")?;
    assert_eq!(e.status, 401, "{e}");
    assert!(e.reason.contains("inputImageName"), "{e}");
    assert!(!e.to_json().contains(secret), "{e}");
    // Output side: the push is refused.
    let mut req = request(
        &format!("{}/app:1", s.input.host()),
        &format!("{}/out:1", locked.host()),
    );
    req.output_auth_config = Some(auth);
    let e = convert(req, &env)
        .await
        .err()
        .ok_or("wrong push credentials accepted")?;
    assert_eq!(e.status, 401, "{e}");
    assert!(e.reason.contains("outputImageName"), "{e}");
    assert!(!e.to_json().contains(secret), "{e}");
    Ok(())
}

//! A fixture kiln runtime image in the format of docs/image-formats.md ("Runtime image
//! (format 1)"), for tests and the demo. It is NOT Gramine: `sgx/libpal.so` is the
//! engine's synthetic test PAL (engine/testdata/gramine/libpal_test.so, so measurements
//! are real computations over a fake PAL), `libsysdb.so` is a few fixed bytes, and
//! `sgx/loader` and `direct/libpal.so` are the fixture loader (tests/fixture-loader),
//! which execs the app as Gramine would set it up. `kiln-launcher` and `kiln-init` are the
//! real ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_engine::gramine::runtime_descriptor::RuntimeDescriptor;
use kiln_engine::image::layer_writer::{write_layer, NewEntry};
use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::images::{Blob, ImageFormat, TestImage};
use crate::HarnessError;

/// The synthetic SGX PAL the engine's measurement tests use.
pub const LIBPAL_TEST: &[u8] = include_bytes!("../../engine/testdata/gramine/libpal_test.so");
/// The fixture LibOS bytes.
pub const LIBSYSDB_FIXTURE: &[u8] = b"kiln fixture libsysdb.so: not Gramine\n";
/// The runtime prefix.
pub const PREFIX: &str = "/opt/kiln/runtime";

/// The executables of the fixture runtime.
#[derive(Debug, Clone)]
pub struct RuntimeBinaries {
    /// The static `kiln-launcher`.
    pub launcher: Vec<u8>,
    /// The static fixture loader.
    pub loader: Vec<u8>,
    /// The static kiln-init (empty: the runtime image has none, as one packed before
    /// kiln-init existed).
    pub init: Vec<u8>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn run_script(name: &str) -> Result<PathBuf, HarnessError> {
    let out = Command::new(repo_root().join("scripts").join(name)).output()?;
    if !out.status.success() {
        return Err(format!(
            "scripts/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let path = String::from_utf8(out.stdout)?.trim().to_string();
    Ok(PathBuf::from(path))
}

impl RuntimeBinaries {
    /// Placeholder bytes (images that are converted but never run).
    pub fn placeholders() -> Self {
        RuntimeBinaries {
            launcher: b"#!/bin/sh\necho placeholder launcher\n".to_vec(),
            loader: b"#!/bin/sh\necho placeholder loader\n".to_vec(),
            init: b"#!/bin/sh\necho placeholder kiln-init\n".to_vec(),
        }
    }

    /// Builds the real static launcher, kiln-init and fixture loader
    /// (scripts/build-launcher.sh, scripts/build-init.sh, scripts/build-fixture-loader.sh).
    pub fn build() -> Result<Self, HarnessError> {
        let launcher = std::fs::read(run_script("build-launcher.sh")?)?;
        let loader = std::fs::read(run_script("build-fixture-loader.sh")?)?;
        let init = std::fs::read(run_script("build-init.sh")?)?;
        Ok(RuntimeBinaries {
            launcher,
            loader,
            init,
        })
    }
}

fn sha256_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// The fixture's runtime descriptor.
pub fn descriptor() -> RuntimeDescriptor {
    RuntimeDescriptor::standard(
        "1.9",
        PREFIX,
        sha256_hex(LIBSYSDB_FIXTURE),
        sha256_hex(LIBPAL_TEST),
    )
}

/// Builds the fixture runtime image (OCI, one deterministic gzip layer, labels).
pub fn runtime_image(bins: &RuntimeBinaries) -> Result<TestImage, HarnessError> {
    let d = descriptor();
    let p = |rel: &str| format!("{PREFIX}/{rel}");
    let mut entries = vec![
        NewEntry::dir("/opt", 0o755),
        NewEntry::dir("/opt/kiln", 0o755),
        NewEntry::dir(PREFIX, 0o755),
        NewEntry::dir(p("sgx"), 0o755),
        NewEntry::dir(p("direct"), 0o755),
        NewEntry::dir(p("lib"), 0o755),
        NewEntry::file(p("runtime.json"), 0o644, d.to_json().into_bytes()),
        NewEntry::file(p("sgx/libpal.so"), 0o755, LIBPAL_TEST.to_vec()),
        NewEntry::file(p("sgx/loader"), 0o755, bins.loader.clone()),
        NewEntry::file(p("direct/libpal.so"), 0o755, bins.loader.clone()),
        NewEntry::file(p("libsysdb.so"), 0o755, LIBSYSDB_FIXTURE.to_vec()),
        NewEntry::file(p("kiln-launcher"), 0o755, bins.launcher.clone()),
    ];
    // An empty kiln-init stands for a runtime packed before kiln-init existed.
    if !bins.init.is_empty() {
        entries.push(NewEntry::file(p("kiln-init"), 0o755, bins.init.clone()));
    }
    let layer = write_layer(&entries, 0)?;
    let compact = serde_json::to_string(&d)?;
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {
            "dev.kiln.runtime.format": "1",
            "dev.kiln.runtime.descriptor": compact,
            "dev.kiln.runtime.gramine-version": "1.9",
            "dev.kiln.runtime.fixture": "synthetic PAL, fixture loader: not Gramine",
        }},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kiln tests: fixture runtime"}],
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&cfg)?);
    let layer_blob = Blob::new(OCI_LAYER_GZIP, layer.blob);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_blob.descriptor()],
    });
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers: vec![layer_blob],
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest),
    })
}

/// Pushes the fixture runtime image built from `bins` as `kiln/runtime:fixture` (what
/// the conversion tests pass as the runtime: `HOST/kiln/runtime:fixture`); returns it.
pub async fn push_fixture_runtime(
    client: &kiln_engine::image::registry::RegistryClient,
    bins: &RuntimeBinaries,
) -> Result<TestImage, HarnessError> {
    let rt = runtime_image(bins)?;
    crate::images::push_image(
        client,
        "kiln/runtime",
        &rt,
        Some("fixture"),
        kiln_engine::image::registry::UploadMode::Monolithic,
    )
    .await?;
    Ok(rt)
}

/// Packs a runtime image with `kiln runtime pack` from the Gramine install at `prefix` and
/// pushes it to the plain-HTTP registry at `host` as `kiln/runtime:gramine`; returns it.
pub fn pack_gramine_runtime(
    prefix: impl AsRef<std::ffi::OsStr>,
    host: &str,
) -> Result<String, HarnessError> {
    let runtime = format!("{host}/kiln/runtime:gramine");
    crate::runc::run_ok(
        Command::new(crate::cli::kiln_bin()?)
            .args(["runtime", "pack", "--gramine-prefix"])
            .arg(prefix)
            .args(["--out", &runtime, "--insecure-registry", host]),
    )?;
    Ok(runtime)
}

/// The conversion tests' pipeline environment: `transport` to the plain-HTTP registry at
/// `host`, `runtime` as the runtime image, and engine/testdata's test key as the default
/// signer.
pub fn test_pipeline_env(
    transport: std::sync::Arc<dyn kiln_engine::image::transport::Transport>,
    runtime: String,
    host: &str,
) -> Result<kiln_engine::pipeline::PipelineEnv, HarnessError> {
    let mut env = kiln_engine::pipeline::PipelineEnv::new(transport, runtime);
    env.registry = env.registry.with_insecure(host);
    env.default_signer = Some(std::sync::Arc::new(
        kiln_engine::sgx::signer::PrivateKeySigner::from_pem(
            include_str!("../../engine/testdata/gramine/test-key.pem"),
            None,
        )?,
    ));
    Ok(env)
}

//! Real-app test images: Debian bookworm images built like the official ones from Debian
//! packages (debootstrap minbase, then `apt-get install --no-install-recommends` in a
//! chroot) by scripts/build-real-app-images.sh, cached outside the clone by a hash of
//! their recipe (`KILN_TEST_IMAGE_CACHE`, default `~/.cache/kiln/test-images`). Nothing is
//! pulled from a container registry.
//!
//! [`real_app_image`] builds (first use) or reads (later) one app's image and returns it
//! as a one-layer OCI [`TestImage`]; calls from parallel tests build each thing once (a
//! lock here, and the script's own `flock` across processes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use serde_json::json;

use crate::images::{Blob, ImageFormat, TestImage};
use crate::HarnessError;

/// The apps of the suite, as scripts/build-real-app-images.sh names them.
pub const APPS: &[&str] = &[
    "bash",
    "python",
    "python-http",
    "ld-library-path",
    "nginx",
    "redis",
    "node",
    "java",
];

/// The fixed `created` time of the images (the conversion's build time comes from it).
pub const CREATED: &str = "2025-05-20T00:00:00Z";

/// Where the build script is.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("build-real-app-images.sh")
}

/// Why the images cannot be built here (not root, or debootstrap/unshare missing), if
/// they cannot.
pub fn cannot_build() -> Option<String> {
    crate::runc::runc_unavailable(&["debootstrap", "unshare", "chroot", "flock"])
}

/// Runs the build script for `apps`; returns `(app, cached image dir)` pairs.
pub fn build_cached(apps: &[&str]) -> Result<Vec<(String, PathBuf)>, HarnessError> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let script = build_script();
    let out = Command::new(&script)
        .args(apps)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({})",
            script.display(),
            apps.join(" "),
            out.status
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .map(|l| {
            let (app, dir) = l
                .split_once(' ')
                .ok_or_else(|| format!("build-real-app-images.sh printed {l:?}"))?;
            Ok((app.to_string(), PathBuf::from(dir)))
        })
        .collect()
}

/// The OCI image of one cached app dir (`layer.tar.gz`, `diff_id`, `config.json`).
pub fn image_from_dir(dir: &Path) -> Result<TestImage, HarnessError> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let layer = Blob::new(OCI_LAYER_GZIP, read("layer.tar.gz")?);
    let diff_id = String::from_utf8(read("diff_id")?)?.trim().to_string();
    if !diff_id.starts_with("sha256:") || diff_id.len() != 71 {
        return Err(format!(
            "{}/diff_id: not a sha256 digest: {diff_id:?}",
            dir.display()
        )
        .into());
    }
    let config: serde_json::Value = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| format!("{}/config.json: {e}", dir.display()))?;
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "kiln tests: scripts/build-real-app-images.sh"}],
    });
    one_layer_image(layer, &cfg)
}

/// A linux/amd64 OCI image of one `layer` and the image config `cfg` (whose
/// `rootfs.diff_ids` names the layer's diff_id): the real apps' and the Debian minbase
/// end-to-end test's form.
pub fn one_layer_image(layer: Blob, cfg: &serde_json::Value) -> Result<TestImage, HarnessError> {
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(cfg)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers: vec![layer],
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest),
    })
}

/// One app's image, built on first use and cached.
pub fn real_app_image(app: &str) -> Result<TestImage, HarnessError> {
    if !APPS.contains(&app) {
        return Err(format!("unknown real app {app:?} (apps: {})", APPS.join(", ")).into());
    }
    let built = build_cached(&[app])?;
    let (_, dir) = built
        .iter()
        .find(|(a, _)| a == app)
        .ok_or_else(|| format!("build-real-app-images.sh did not build {app}"))?;
    image_from_dir(dir)
}

//! Sample app images built without a container engine: a busybox image (Debian's
//! static busybox from the host) whose app prints its argv, environment, working
//! directory and user, so a test can compare the original and the converted image.

use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use kiln_engine::image::reference::Digest;
use serde_json::{json, Value};

use crate::images::{gzip, Blob, ImageFormat, TestImage};
use crate::HarnessError;

/// Where the host's static busybox is (Debian `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// The shell script the sample app runs: one line per fact.
pub const REPORT_SCRIPT: &str = "echo \"argv0=$0\"; for a in \"$@\"; do echo \"arg=$a\"; done; \
/bin/busybox env | /bin/busybox sort | /bin/busybox sed 's/^/env=/'; \
echo \"cwd=$(/bin/busybox pwd)\"; echo \"ids=$(/bin/busybox id -u):$(/bin/busybox id -g)\"";

/// One tar entry.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir(&'static str),
    /// A regular file with its mode.
    File(&'static str, Vec<u8>, u32),
    /// A symbolic link (path, target).
    Symlink(&'static str, &'static str),
}

/// A deterministic tar of entries (mtime 0, root-owned).
pub fn tar_entries(entries: &[Entry]) -> Result<Vec<u8>, HarnessError> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_path(p)?;
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
            Entry::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                h.set_path(p)?;
                h.set_cksum();
                b.append(&h, data.as_slice())?;
            }
            Entry::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_path(p)?;
                h.set_link_name(t)?;
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// An OCI image of gzip layers with the given `config` section.
pub fn oci_image(
    layers: &[Vec<u8>],
    config: Value,
    created: &str,
) -> Result<TestImage, HarnessError> {
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(Digest::sha256_of(tar).to_string());
        blobs.push(Blob::new(OCI_LAYER_GZIP, gzip(tar)?));
    }
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&cfg)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers: blobs,
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest),
    })
}

/// The busybox sample: ENTRYPOINT runs [`REPORT_SCRIPT`], CMD gives two arguments,
/// Env, WorkingDir `/work` and User `1000:1000` are set.
pub fn busybox_image() -> Result<TestImage, HarnessError> {
    let busybox = std::fs::read(HOST_BUSYBOX)?;
    let base = tar_entries(&[
        Entry::Dir("bin"),
        Entry::File("bin/busybox", busybox.clone(), 0o755),
        Entry::File("bin/sh", busybox, 0o755),
        Entry::Symlink("bin/env", "busybox"),
        Entry::Dir("etc"),
        Entry::File(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n".to_vec(),
            0o644,
        ),
        Entry::File("etc/group", b"root:x:0:\napp:x:1000:\n".to_vec(), 0o644),
        Entry::Dir("home"),
        Entry::Dir("home/app"),
        Entry::Dir("tmp"),
    ])?;
    let app = tar_entries(&[
        Entry::Dir("work"),
        Entry::File("work/data.txt", b"sample data\n".to_vec(), 0o644),
    ])?;
    oci_image(
        &[base, app],
        json!({
            "Entrypoint": ["/bin/sh", "-c", REPORT_SCRIPT, "report"],
            "Cmd": ["first arg", "--second"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "FOO=bar baz"],
            "WorkingDir": "/work",
            "User": "1000:1000",
        }),
        "2024-05-06T07:08:09Z",
    )
}

/// A one-layer OCI image with a placeholder `/bin/sh` (`#!fake shell {seed}`) and an
/// `/etc/passwd` naming root: enough to convert (an entrypoint and a user), never run.
pub fn shell_app_image(seed: &str) -> Result<TestImage, HarnessError> {
    let mut sh = crate::images::FileSpec::new("bin/sh", format!("#!fake shell {seed}\n"));
    sh.mode = 0o755;
    crate::images::build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[vec![
            sh,
            crate::images::FileSpec::new("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ]],
    )
}

/// Pushes [`busybox_image`] as `{repository}:1`; returns its manifest digest.
pub async fn push_busybox(
    client: &kiln_engine::image::registry::RegistryClient,
    repository: &str,
) -> Result<Digest, HarnessError> {
    Ok(crate::images::push_image(
        client,
        repository,
        &busybox_image()?,
        Some("1"),
        kiln_engine::image::registry::UploadMode::Monolithic,
    )
    .await?)
}

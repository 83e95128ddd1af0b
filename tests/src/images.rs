//! Small deterministic test images, built without a container engine: tar + gzip
//! layers, a config, an OCI or Docker v2 manifest, and indexes. Written as an OCI
//! layout for skopeo/umoci, or pushed with the engine's own client (blobs, then the
//! manifest by digest, then the tag).

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::{RegistryClient, RegistryError, UploadMode};
use kiln_engine::image::transport::Body;
use serde_json::json;

use crate::HarnessError;

/// Which family of media types to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// OCI image manifest / index.
    Oci,
    /// Docker v2 schema 2 manifest / manifest list.
    Docker,
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The `sha256:` digest.
    pub digest: Digest,
    /// The media type used in descriptors.
    pub media_type: String,
    /// The bytes.
    pub data: Bytes,
}

impl Blob {
    /// A blob from bytes.
    pub fn new(media_type: &str, data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Blob {
            digest: Digest::sha256_of(&data),
            media_type: media_type.to_string(),
            data,
        }
    }

    /// Its OCI descriptor as JSON.
    pub fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.data.len()})
    }
}

/// One file of a layer.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Path inside the image (relative, e.g. `etc/motd`).
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

impl FileSpec {
    /// A regular file with mode 0644.
    pub fn new(path: &str, data: impl Into<Vec<u8>>) -> Self {
        FileSpec {
            path: path.to_string(),
            data: data.into(),
            mode: 0o644,
        }
    }
}

/// A built image: layers, config, manifest (exact bytes).
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Media-type family.
    pub format: ImageFormat,
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, ... if any.
    pub variant: Option<String>,
    /// Compressed layers, base first.
    pub layers: Vec<Blob>,
    /// The config blob.
    pub config: Blob,
    /// The manifest.
    pub manifest: RawManifest,
}

impl TestImage {
    /// Replaces the config blob with `cfg` (same media type) and rewrites the manifest's
    /// config and layer descriptors from the image's blobs, for tests that change a
    /// layer or the config of a built image.
    pub fn set_config(&mut self, cfg: &serde_json::Value) -> Result<(), HarnessError> {
        self.config = Blob::new(&self.config.media_type, serde_json::to_vec(cfg)?);
        let mut m: serde_json::Value = serde_json::from_slice(self.manifest.bytes())?;
        m["config"] = self.config.descriptor();
        m["layers"] = json!(self.layers.iter().map(Blob::descriptor).collect::<Vec<_>>());
        self.manifest = RawManifest::with_kind(serde_json::to_vec(&m)?, self.manifest.kind());
        Ok(())
    }
}

/// A deterministic uncompressed tar of `files` (mtime 0, uid/gid 0).
pub fn tar_of(files: &[FileSpec]) -> Result<Vec<u8>, HarnessError> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(&f.path)?;
        h.set_size(f.data.len() as u64);
        h.set_mode(f.mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, f.data.as_slice())?;
    }
    Ok(b.into_inner()?)
}

/// Gzip with a fixed header (mtime 0), so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, HarnessError> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// Deterministic incompressible bytes (xorshift), for large layers.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Builds an image for `os/architecture[/variant]` with one layer per file list.
pub fn build_image(
    format: ImageFormat,
    os: &str,
    architecture: &str,
    variant: Option<&str>,
    layers: &[Vec<FileSpec>],
) -> Result<TestImage, HarnessError> {
    let layer_mt = match format {
        ImageFormat::Oci => OCI_LAYER_GZIP,
        ImageFormat::Docker => DOCKER_LAYER_GZIP,
    };
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let tar = tar_of(files)?;
        diff_ids.push(Digest::sha256_of(&tar).to_string());
        blobs.push(Blob::new(layer_mt, gzip(&tar)?));
    }
    let mut cfg = json!({
        "architecture": architecture,
        "os": os,
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(v) = variant {
        cfg["variant"] = json!(v);
    }
    let (config_mt, manifest_mt, kind) = match format {
        ImageFormat::Oci => (OCI_CONFIG, OCI_MANIFEST, ManifestKind::OciManifest),
        ImageFormat::Docker => (DOCKER_CONFIG, DOCKER_MANIFEST, ManifestKind::DockerManifest),
    };
    let config = Blob::new(config_mt, serde_json::to_vec(&cfg)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_mt,
        "config": config.descriptor(),
        "layers": blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Ok(TestImage {
        format,
        os: os.to_string(),
        architecture: architecture.to_string(),
        variant: variant.map(str::to_string),
        layers: blobs,
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, kind),
    })
}

/// A two-layer image whose contents depend on `seed` (distinct seeds, distinct blobs).
pub fn simple_image(
    format: ImageFormat,
    architecture: &str,
    seed: &str,
) -> Result<TestImage, HarnessError> {
    build_image(
        format,
        "linux",
        architecture,
        if architecture == "arm64" {
            Some("v8")
        } else {
            None
        },
        &[
            vec![
                FileSpec::new("etc/motd", format!("hello {architecture} {seed}\n")),
                FileSpec::new("bin/app", format!("#!/bin/sh\necho {seed}\n")),
            ],
            vec![FileSpec::new("opt/layer2", format!("layer two {seed}\n"))],
        ],
    )
}

/// The conversion tests' linux/amd64 OCI app: a first layer with a fake `/bin/sh`
/// (`shell` its text, mode 0755) and an `/etc/passwd` for root, then `second_layer`.
pub fn shell_app_image(
    shell: &str,
    second_layer: Vec<FileSpec>,
) -> Result<TestImage, HarnessError> {
    let mut sh = FileSpec::new("bin/sh", shell);
    sh.mode = 0o755;
    build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[
            vec![
                sh,
                FileSpec::new("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ],
            second_layer,
        ],
    )
}

/// An index (OCI) or manifest list (Docker) over `images`.
pub fn build_index(
    format: ImageFormat,
    images: &[&TestImage],
) -> Result<RawManifest, HarnessError> {
    let (mt, kind) = match format {
        ImageFormat::Oci => (OCI_INDEX, ManifestKind::OciIndex),
        ImageFormat::Docker => (DOCKER_MANIFEST_LIST, ManifestKind::DockerManifestList),
    };
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            let mut p = json!({"architecture": i.architecture, "os": i.os});
            if let Some(v) = &i.variant {
                p["variant"] = json!(v);
            }
            json!({
                "mediaType": i.manifest.media_type(),
                "digest": i.manifest.digest().to_string(),
                "size": i.manifest.size(),
                "platform": p,
            })
        })
        .collect();
    let idx = json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests});
    Ok(RawManifest::with_kind(serde_json::to_vec(&idx)?, kind))
}

/// Writes an OCI image layout: `oci-layout`, `blobs/sha256/*`, and `index.json`
/// naming each `(tag, manifest)` with `org.opencontainers.image.ref.name`.
pub fn write_oci_layout(
    dir: &Path,
    images: &[&TestImage],
    tags: &[(&str, &RawManifest)],
) -> Result<(), HarnessError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let put = |digest: &Digest, data: &[u8]| std::fs::write(blobs.join(digest.hex()), data);
    for i in images {
        for l in &i.layers {
            put(&l.digest, &l.data)?;
        }
        put(&i.config.digest, &i.config.data)?;
        put(i.manifest.digest(), i.manifest.bytes())?;
    }
    for (_, m) in tags {
        put(m.digest(), m.bytes())?;
    }
    let manifests: Vec<serde_json::Value> = tags
        .iter()
        .map(|(t, m)| {
            json!({
                "mediaType": m.media_type(),
                "digest": m.digest().to_string(),
                "size": m.size(),
                "annotations": {"org.opencontainers.image.ref.name": t},
            })
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

/// Pushes a blob unless the repository has it already. Returns whether it uploaded.
pub async fn push_blob_if_missing(
    client: &RegistryClient,
    repository: &str,
    blob: &Blob,
    mode: UploadMode,
) -> Result<bool, RegistryError> {
    if client
        .blob_exists(repository, &blob.digest)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    client
        .push_blob(
            repository,
            &blob.digest,
            Body::Bytes(blob.data.clone()),
            mode,
        )
        .await?;
    Ok(true)
}

/// Whether `repository` has `tag` (a HEAD that fails counts as no).
pub async fn tag_exists(client: &RegistryClient, repository: &str, tag: &str) -> bool {
    matches!(client.head_manifest(repository, tag).await, Ok(Some(_)))
}

/// Pushes an image in the safe order: blobs, manifest by digest, then the tag.
pub async fn push_image(
    client: &RegistryClient,
    repository: &str,
    image: &TestImage,
    tag: Option<&str>,
    mode: UploadMode,
) -> Result<Digest, RegistryError> {
    for l in &image.layers {
        push_blob_if_missing(client, repository, l, mode).await?;
    }
    push_blob_if_missing(client, repository, &image.config, mode).await?;
    let d = client.push_manifest(repository, &image.manifest).await?;
    if let Some(t) = tag {
        client.tag_manifest(repository, t, &image.manifest).await?;
    }
    Ok(d)
}

/// Pushes every image of an index, then the index by digest, then the tag.
pub async fn push_index(
    client: &RegistryClient,
    repository: &str,
    index: &RawManifest,
    images: &[&TestImage],
    tag: Option<&str>,
) -> Result<Digest, RegistryError> {
    for i in images {
        push_image(client, repository, i, None, UploadMode::Monolithic).await?;
    }
    let d = client.push_manifest(repository, index).await?;
    if let Some(t) = tag {
        client.tag_manifest(repository, t, index).await?;
    }
    Ok(d)
}

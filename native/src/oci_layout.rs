//! Reading an OCI image layout directory (`oci:DIR[:TAG]`): `index.json`, manifests
//! and blobs under `blobs/<alg>/<hex>`, every manifest and config verified against its
//! digest, an index resolved to linux/amd64 like a registry's.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kiln_engine::image::manifest::{select_platform, ManifestError, PlatformSpec, RawManifest};
use kiln_engine::image::reference::{Digest, ReferenceError};
use kiln_engine::image::registry::{BlobStream, ResolvedImage, VerifiedStream};
use kiln_engine::image::transport::{TransportError, TransportErrorKind};
use oci_spec::image::Descriptor;

/// The annotation naming a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest config read whole.
const CONFIG_SIZE_MAX: u64 = 16 * 1024 * 1024;

/// What went wrong reading a layout.
#[derive(Debug, thiserror::Error)]
pub enum OciLayoutError {
    /// A file could not be read.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// No `oci-layout` file: not an OCI image layout.
    #[error("{0}: not an OCI image layout (no oci-layout file)")]
    NotALayout(PathBuf),
    /// The tag is not in `index.json`.
    #[error("{dir}: no image tagged {tag:?} (tags: {})", if present.is_empty() { "none".to_string() } else { present.join(", ") })]
    TagNotFound {
        /// The layout.
        dir: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags present.
        present: Vec<String>,
    },
    /// No tag given and `index.json` names several images.
    #[error("{dir}: {count} images in index.json; name one with oci:DIR:TAG")]
    Ambiguous {
        /// The layout.
        dir: PathBuf,
        /// How many.
        count: usize,
    },
    /// A manifest problem.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A digest problem.
    #[error(transparent)]
    Digest(#[from] ReferenceError),
    /// A blob's size differs from its descriptor.
    #[error("{what}: expected {expected} bytes, found {actual}")]
    Size {
        /// Which blob.
        what: String,
        /// Descriptor size.
        expected: u64,
        /// File size.
        actual: u64,
    },
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

fn io_err(path: &Path, e: std::io::Error) -> OciLayoutError {
    OciLayoutError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

impl OciLayout {
    /// Opens a layout (checks for its `oci-layout` file).
    pub fn open(dir: &Path) -> Result<Self, OciLayoutError> {
        if !dir.join("oci-layout").is_file() {
            return Err(OciLayoutError::NotALayout(dir.to_path_buf()));
        }
        Ok(OciLayout {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// `index.json`.
    pub fn index(&self) -> Result<RawManifest, OciLayoutError> {
        let p = self.dir.join("index.json");
        let b = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        Ok(RawManifest::from_bytes(
            b,
            Some(kiln_engine::image::manifest::OCI_INDEX),
        )?)
    }

    /// The descriptor tagged `tag` in `index.json` (or the only one when `None`).
    pub fn find(&self, tag: Option<&str>) -> Result<Descriptor, OciLayoutError> {
        let idx = self.index()?.index()?;
        let name = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME).cloned())
        };
        match tag {
            Some(t) => idx
                .manifests()
                .iter()
                .find(|d| name(d).as_deref() == Some(t))
                .cloned()
                .ok_or_else(|| OciLayoutError::TagNotFound {
                    dir: self.dir.clone(),
                    tag: t.to_string(),
                    present: idx.manifests().iter().filter_map(name).collect(),
                }),
            None => match idx.manifests().as_slice() {
                [one] => Ok(one.clone()),
                many => Err(OciLayoutError::Ambiguous {
                    dir: self.dir.clone(),
                    count: many.len(),
                }),
            },
        }
    }

    /// Reads a whole blob of at most `max` bytes, verifying its digest.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Bytes, OciLayoutError> {
        let p = self.blob_path(digest);
        let f = std::fs::File::open(&p).map_err(|e| io_err(&p, e))?;
        let mut out = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| io_err(&p, e))?;
        if out.len() as u64 > max {
            return Err(ManifestError::TooLarge.into());
        }
        kiln_engine::image::manifest::verify_digest(&format!("blob {digest}"), digest, &out)?;
        Ok(Bytes::from(out))
    }

    /// Reads a manifest by descriptor (digest and size checked).
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<RawManifest, OciLayoutError> {
        let d = Digest::try_from(desc.digest())?;
        let b = self.read_blob(&d, kiln_engine::image::manifest::MANIFEST_SIZE_MAX as u64)?;
        check_size(&format!("manifest {d}"), desc.size(), b.len() as u64)?;
        Ok(RawManifest::from_bytes(
            b,
            Some(desc.media_type().as_ref()),
        )?)
    }

    /// Resolves `tag` (or the only image) to an image for `platform`.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        platform: &PlatformSpec,
    ) -> Result<ResolvedImage, OciLayoutError> {
        let first = self.read_manifest(&self.find(tag)?)?;
        let (index, manifest) = if first.kind().is_index() {
            let desc = select_platform(&first.index()?, platform)?;
            (Some(first), self.read_manifest(&desc)?)
        } else {
            (None, first)
        };
        let image_manifest = manifest.image_manifest()?;
        let cfg = image_manifest.config();
        let cd = Digest::try_from(cfg.digest())?;
        let config = self.read_blob(&cd, CONFIG_SIZE_MAX)?;
        check_size(&format!("config {cd}"), cfg.size(), config.len() as u64)?;
        kiln_engine::image::manifest::check_config_platform(&config, platform)?;
        Ok(ResolvedImage {
            index,
            manifest,
            image_manifest,
            config,
        })
    }

    /// A blob as a stream of 256 KiB chunks that verifies digest and size as it goes.
    pub fn blob_stream(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream, OciLayoutError> {
        let p = self.blob_path(digest);
        let mut f = std::fs::File::open(&p).map_err(|e| io_err(&p, e))?;
        let chunks = std::iter::from_fn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok(Bytes::from(buf)))
                }
                Err(e) => Some(Err(TransportError::new(
                    TransportErrorKind::Io,
                    e.to_string(),
                ))),
            }
        });
        let raw = Box::pin(futures_util::stream::iter(chunks));
        Ok(Box::pin(VerifiedStream::new(
            raw,
            digest.clone(),
            size,
            &self.dir.display().to_string(),
            &format!("blob {digest}"),
        )))
    }
}

fn check_size(what: &str, expected: u64, actual: u64) -> Result<(), OciLayoutError> {
    if expected != actual {
        return Err(OciLayoutError::Size {
            what: what.to_string(),
            expected,
            actual,
        });
    }
    Ok(())
}

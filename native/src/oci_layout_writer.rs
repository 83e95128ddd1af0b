//! Writing OCI image layouts (`oci:DIR[:TAG]`): blobs under `blobs/sha256/`, the
//! `oci-layout` marker and `index.json`, where a tag replaces an earlier manifest of the
//! same name. Blobs are written to a temporary name and renamed, so a crash leaves no
//! half-written blob under its digest.

use std::path::{Path, PathBuf};

use kiln_engine::image::manifest::{RawManifest, OCI_INDEX};
use kiln_engine::image::reference::Digest;

use crate::OciLayoutError;

/// The annotation naming a manifest's tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A writer for an OCI image layout directory (created when missing).
#[derive(Debug, Clone)]
pub struct OciLayoutWriter {
    dir: PathBuf,
}

fn io_err(path: &Path, e: std::io::Error) -> OciLayoutError {
    OciLayoutError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

impl OciLayoutWriter {
    /// Opens or creates the layout at `dir`.
    pub fn create(dir: &Path) -> Result<Self, OciLayoutError> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| io_err(&blobs, e))?;
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            std::fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| io_err(&marker, e))?;
        }
        Ok(OciLayoutWriter {
            dir: dir.to_path_buf(),
        })
    }

    /// Writes a blob (skipped when present).
    pub fn put_blob(&self, data: &[u8]) -> Result<Digest, OciLayoutError> {
        let digest = Digest::sha256_of(data);
        let path = self.dir.join("blobs").join("sha256").join(digest.hex());
        if !path.is_file() {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, data).map_err(|e| io_err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        }
        Ok(digest)
    }

    /// Writes the manifest blob and names it `tag` in `index.json` (replacing an
    /// earlier entry with that tag; untagged when `None`).
    pub fn put_manifest(
        &self,
        manifest: &RawManifest,
        tag: Option<&str>,
    ) -> Result<Digest, OciLayoutError> {
        let digest = self.put_blob(manifest.bytes())?;
        let index_path = self.dir.join("index.json");
        let mut index: serde_json::Value = match std::fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| OciLayoutError::Io {
                path: index_path.clone(),
                detail: e.to_string(),
            })?,
            Err(_) => {
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
            }
        };
        let mut entry = serde_json::json!({
            "mediaType": manifest.media_type(),
            "digest": digest.to_string(),
            "size": manifest.size(),
        });
        if let Some(t) = tag {
            entry["annotations"] = serde_json::json!({ REF_NAME: t });
        }
        let list = index
            .get_mut("manifests")
            .and_then(|m| m.as_array_mut())
            .ok_or_else(|| OciLayoutError::Io {
                path: index_path.clone(),
                detail: "index.json has no manifests array".into(),
            })?;
        list.retain(|d| {
            let same_tag = tag.is_some()
                && d.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(|n| n.as_str())
                    == tag;
            let same_untagged = tag.is_none()
                && d.get("annotations").is_none()
                && d.get("digest").and_then(|x| x.as_str()) == Some(&digest.to_string());
            !same_tag && !same_untagged
        });
        list.push(entry);
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| OciLayoutError::Io {
            path: index_path.clone(),
            detail: e.to_string(),
        })?;
        let tmp = index_path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &index_path).map_err(|e| io_err(&index_path, e))?;
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OciLayout;
    use kiln_engine::image::manifest::{ManifestKind, PlatformSpec};

    #[test]
    fn writes_a_layout_the_reader_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let w = OciLayoutWriter::create(dir.path()).unwrap();
        let cfg =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cd = w.put_blob(cfg).unwrap();
        let m = serde_json::json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":cd.to_string(),"size":cfg.len()},"layers":[]});
        let m = RawManifest::with_kind(serde_json::to_vec(&m).unwrap(), ManifestKind::OciManifest);
        w.put_manifest(&m, Some("v1")).unwrap();
        w.put_manifest(&m, Some("v1")).unwrap();
        w.put_manifest(&m, Some("v2")).unwrap();
        let r = OciLayout::open(dir.path()).unwrap();
        let got = r.resolve(Some("v1"), &PlatformSpec::linux_amd64()).unwrap();
        assert_eq!(got.manifest.digest(), m.digest());
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
    }
}

//! Building the runtime image from the runtime's files: the descriptor (with hashes), one
//! deterministic layer under the prefix, the config with its labels, the OCI manifest.
//! The same files and mtime always give the same manifest digest.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::json;

use super::labels::{
    DESCRIPTOR_FILE, INIT_FILE, LABEL_DESCRIPTOR, LABEL_FORMAT, LABEL_GRAMINE_VERSION,
    LAUNCHER_FILE, RUNTIME_FORMAT,
};
use crate::gramine::runtime_descriptor::{RuntimeDescriptor, RuntimeError, RuntimeGlibc};
use crate::image::digest::sha256_digest;
use crate::image::layer_writer::{write_layer, LayerWriteError, NewEntry, WrittenLayer};
use crate::image::manifest::{ManifestKind, RawManifest, OCI_CONFIG, OCI_MANIFEST};
use crate::image::scan::libc_probe::libc_release;

/// The files of one Gramine runtime, gathered by the caller (`kiln runtime pack`).
#[derive(Debug, Clone, Default)]
pub struct RuntimeFiles {
    /// Gramine version, e.g. `1.9`.
    pub gramine_version: String,
    /// The SGX PAL (`sgx/libpal.so`).
    pub sgx_libpal: Vec<u8>,
    /// The SGX host loader, already patched (interpreter and RUNPATH under the prefix).
    pub sgx_loader: Vec<u8>,
    /// The direct-mode PAL (`direct/libpal.so`).
    pub direct_libpal: Vec<u8>,
    /// The LibOS (`libsysdb.so`).
    pub libsysdb: Vec<u8>,
    /// The loader's libraries for `lib/`, by file name (`libc.so.6`, ...), including
    /// the interpreter `ld-linux-x86-64.so.2`.
    pub libs: BTreeMap<String, Vec<u8>>,
    /// The static launcher.
    pub launcher: Vec<u8>,
    /// The static kiln-init (provisions certificates inside the enclave).
    pub kiln_init: Vec<u8>,
    /// Gramine's patched glibc (its `runtime/glibc` libraries, by file name), empty when
    /// the install has none; packed under [`GLIBC_DIR`].
    pub glibc: BTreeMap<String, Vec<u8>>,
}

/// Where the runtime's glibc lives below the prefix.
pub const GLIBC_DIR: &str = "glibc";

/// Why a runtime image cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required file is empty (not found by the caller).
    #[error("runtime image: {0} is empty")]
    EmptyFile(&'static str),
    /// A library name is not a plain file name.
    #[error("runtime image: library name `{0}` must be a plain file name")]
    BadLibName(String),
    /// The glibc files lack a release banner in `libc.so.6`.
    #[error("runtime image: glibc's libc.so.6 has no release banner (`release version 2.NN`)")]
    GlibcVersion,
    /// The descriptor is invalid (bad prefix).
    #[error(transparent)]
    Descriptor(#[from] RuntimeError),
    /// The layer could not be written.
    #[error(transparent)]
    Layer(#[from] LayerWriteError),
    /// JSON encoding failed.
    #[error("runtime image: {0}")]
    Json(#[from] serde_json::Error),
}

/// A built runtime image: descriptor, layer, config and manifest (exact bytes).
#[derive(Debug, Clone)]
pub struct BuiltRuntimeImage {
    /// The descriptor (also in `runtime.json` and the config label).
    pub descriptor: RuntimeDescriptor,
    /// The single layer.
    pub layer: WrittenLayer,
    /// The config blob.
    pub config: Bytes,
    /// Digest of the config blob.
    pub config_digest: String,
    /// The OCI manifest.
    pub manifest: RawManifest,
}

fn hex_sha256(data: &[u8]) -> String {
    let d = sha256_digest(data);
    d.strip_prefix("sha256:").unwrap_or(&d).to_string()
}

/// The descriptor for `files` installed under `prefix` (standard relative paths).
pub fn descriptor_for(files: &RuntimeFiles, prefix: &str) -> Result<RuntimeDescriptor, BuildError> {
    let mut d = RuntimeDescriptor::standard(
        &files.gramine_version,
        prefix,
        hex_sha256(&files.libsysdb),
        hex_sha256(&files.sgx_libpal),
    );
    if !files.glibc.is_empty() {
        let version = files
            .glibc
            .get("libc.so.6")
            .and_then(|libc| libc_release(libc))
            .ok_or(BuildError::GlibcVersion)?;
        d.glibc = Some(RuntimeGlibc {
            dir: GLIBC_DIR.into(),
            version,
            files: files
                .glibc
                .iter()
                .map(|(name, data)| (name.clone(), hex_sha256(data)))
                .collect(),
        });
    }
    d.validate()?;
    Ok(d)
}

/// The layer's entries (absolute paths under the prefix), `runtime.json` included.
pub fn layer_entries(
    files: &RuntimeFiles,
    d: &RuntimeDescriptor,
) -> Result<Vec<NewEntry>, BuildError> {
    for (name, data) in [
        ("sgx/libpal.so", &files.sgx_libpal),
        ("sgx/loader", &files.sgx_loader),
        ("direct/libpal.so", &files.direct_libpal),
        ("libsysdb.so", &files.libsysdb),
        ("kiln-launcher", &files.launcher),
        ("kiln-init", &files.kiln_init),
    ] {
        if data.is_empty() {
            return Err(BuildError::EmptyFile(name));
        }
    }
    let p = |rel: &str| d.path_of(rel);
    let mut entries = vec![
        NewEntry::dir(d.prefix.clone(), 0o755),
        NewEntry::file(p(DESCRIPTOR_FILE), 0o644, format!("{}\n", d.to_json())),
        NewEntry::file(p(&d.sgx_libpal), 0o755, files.sgx_libpal.clone()),
        NewEntry::file(p(&d.sgx_loader), 0o755, files.sgx_loader.clone()),
        NewEntry::file(p(&d.direct_libpal), 0o755, files.direct_libpal.clone()),
        NewEntry::file(p(&d.libsysdb), 0o755, files.libsysdb.clone()),
        NewEntry::file(p(LAUNCHER_FILE), 0o755, files.launcher.clone()),
        NewEntry::file(p(INIT_FILE), 0o755, files.kiln_init.clone()),
        NewEntry::dir(p(&d.lib_dir), 0o755),
    ];
    let mut dirs = vec![(d.lib_dir.as_str(), &files.libs)];
    if let Some(g) = &d.glibc {
        entries.push(NewEntry::dir(p(&g.dir), 0o755));
        dirs.push((g.dir.as_str(), &files.glibc));
    }
    for (dir, libs) in dirs {
        for (name, data) in libs {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(BuildError::BadLibName(name.clone()));
            }
            entries.push(NewEntry::file(
                p(&format!("{dir}/{name}")),
                0o755,
                data.clone(),
            ));
        }
    }
    Ok(entries)
}

/// Builds the whole runtime image: descriptor, layer (every mtime `mtime`), config with
/// the labels, OCI manifest.
pub fn build_runtime_image(
    files: &RuntimeFiles,
    prefix: &str,
    mtime: u64,
) -> Result<BuiltRuntimeImage, BuildError> {
    let descriptor = descriptor_for(files, prefix)?;
    let layer = write_layer(&layer_entries(files, &descriptor)?, mtime)?;
    let compact = serde_json::to_string(&descriptor)?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Labels": {
                LABEL_FORMAT: RUNTIME_FORMAT,
                LABEL_DESCRIPTOR: compact,
                LABEL_GRAMINE_VERSION: descriptor.gramine_version,
            }
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created_by": format!("kiln runtime pack (Gramine {})", descriptor.gramine_version)}],
    });
    let config = Bytes::from(serde_json::to_vec(&config)?);
    let config_digest = sha256_digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": crate::image::layer_writer::LAYER_MEDIA_TYPE,
            "digest": layer.digest,
            "size": layer.size,
        }],
    });
    let manifest =
        RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest);
    Ok(BuiltRuntimeImage {
        descriptor,
        layer,
        config,
        config_digest,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::scan::scan_blob;
    use crate::runtime_image::descriptor_from_config;

    fn files() -> RuntimeFiles {
        RuntimeFiles {
            gramine_version: "1.9".into(),
            sgx_libpal: b"pal".to_vec(),
            sgx_loader: b"loader".to_vec(),
            direct_libpal: b"direct".to_vec(),
            libsysdb: b"sysdb".to_vec(),
            libs: [("libc.so.6".to_string(), b"libc".to_vec())].into(),
            launcher: b"launcher".to_vec(),
            kiln_init: b"init".to_vec(),
            glibc: BTreeMap::new(),
        }
    }

    #[test]
    fn builds_deterministically_with_labels() {
        let a = build_runtime_image(&files(), "/opt/kiln/runtime", 0).unwrap();
        let b = build_runtime_image(&files(), "/opt/kiln/runtime", 0).unwrap();
        assert_eq!(a.manifest.digest(), b.manifest.digest());
        assert_eq!(descriptor_from_config(&a.config).unwrap(), a.descriptor);
        assert_eq!(a.descriptor.sgx_libpal_sha256, hex_sha256(b"pal"));
        let s = scan_blob(
            &a.layer.digest,
            crate::image::manifest::OCI_LAYER_GZIP,
            &a.layer.blob,
        )
        .unwrap();
        let paths: Vec<&str> = s.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"/opt/kiln/runtime/lib/libc.so.6"));
        assert!(paths.contains(&"/opt/kiln/runtime/runtime.json"));
        assert!(paths.contains(&"/opt/kiln/runtime/kiln-init"));
        assert!(paths.iter().all(|p| p.starts_with("/opt")));
        let c = build_runtime_image(&files(), "/opt/kiln/runtime", 1).unwrap();
        assert_ne!(a.manifest.digest(), c.manifest.digest());
    }

    #[test]
    fn refuses_missing_files_and_bad_names() {
        let mut f = files();
        f.libsysdb.clear();
        assert!(matches!(
            build_runtime_image(&f, "/opt/kiln/runtime", 0),
            Err(BuildError::EmptyFile("libsysdb.so"))
        ));
        let mut f = files();
        f.kiln_init.clear();
        assert!(matches!(
            build_runtime_image(&f, "/opt/kiln/runtime", 0),
            Err(BuildError::EmptyFile("kiln-init"))
        ));
        let mut f = files();
        f.libs.insert("../x".into(), vec![1]);
        assert!(matches!(
            build_runtime_image(&f, "/opt/kiln/runtime", 0),
            Err(BuildError::BadLibName(_))
        ));
        assert!(matches!(
            build_runtime_image(&files(), "relative", 0),
            Err(BuildError::Descriptor(_))
        ));
    }

    #[test]
    fn packs_gramines_glibc_with_its_release_and_hashes() {
        let mut f = files();
        f.glibc = [
            ("ld-linux-x86-64.so.2".to_string(), b"ld".to_vec()),
            (
                "libc.so.6".to_string(),
                b"GNU C Library (GNU libc) stable release version 2.40.\n".to_vec(),
            ),
        ]
        .into();
        let built = build_runtime_image(&f, "/opt/kiln/runtime", 0).unwrap();
        let g = built.descriptor.glibc.as_ref().unwrap();
        assert_eq!(g.version, "2.40");
        assert_eq!(g.dir, GLIBC_DIR);
        assert_eq!(g.files["ld-linux-x86-64.so.2"], hex_sha256(b"ld"));
        let summary = scan_blob(
            &built.layer.digest,
            crate::image::layer_writer::LAYER_MEDIA_TYPE,
            &built.layer.blob,
        )
        .unwrap();
        assert!(summary
            .entries
            .iter()
            .any(|e| e.path == "/opt/kiln/runtime/glibc/libc.so.6"));
        // Read back from the config label, the descriptor keeps the glibc entry.
        assert_eq!(
            descriptor_from_config(&built.config).unwrap(),
            built.descriptor
        );
        // Without a banner the pack refuses.
        f.glibc.insert("libc.so.6".into(), b"no banner".to_vec());
        assert!(matches!(
            build_runtime_image(&f, "/opt/kiln/runtime", 0),
            Err(BuildError::GlibcVersion)
        ));
        // Without glibc the descriptor (and so every existing runtime image) is unchanged.
        let plain = build_runtime_image(&files(), "/opt/kiln/runtime", 0).unwrap();
        assert!(!plain.descriptor.to_json().contains("glibc"));
    }
}

//! The kiln layer: launcher configuration, both signed manifests, the direct-mode
//! manifest, the conversion record and the host directories of the encrypted mounts,
//! written deterministically (docs/image-formats.md).

use std::collections::BTreeSet;

use kiln_launcher::config as launcher;

use crate::api::ApiError;
use crate::image::file_index::FileIndex;
use crate::image::layer_writer::{write_layer, NewEntry, WrittenLayer};

/// Where the conversion record goes.
pub const CONVERSION_PATH: &str = "/opt/kiln/conversion.json";

/// The files of the kiln layer.
#[derive(Debug, Clone)]
pub struct KilnFiles {
    /// `launcher.json` bytes.
    pub launcher_json: Vec<u8>,
    /// SGX1 `.manifest.sgx` (measured bytes).
    pub sgx1_manifest: Vec<u8>,
    /// SGX1 SIGSTRUCT.
    pub sgx1_sig: Vec<u8>,
    /// EDMM `.manifest.sgx`.
    pub edmm_manifest: Vec<u8>,
    /// EDMM SIGSTRUCT.
    pub edmm_sig: Vec<u8>,
    /// Direct-mode `.manifest`.
    pub direct_manifest: Vec<u8>,
    /// `conversion.json` bytes.
    pub conversion_json: Vec<u8>,
    /// Host directories of the encrypted mounts.
    pub host_dirs: Vec<String>,
}

/// Parent directories of `path` (not `/`), shallowest first.
fn parents(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for p in parts.iter().take(parts.len().saturating_sub(1)) {
        cur.push('/');
        cur.push_str(p);
        out.push(cur.clone());
    }
    out
}

/// Writes the layer. Directories the input image already has are not repeated (so
/// their owner and mode stay the input's); missing ones are 0755 (encrypted host
/// directories 0777, since the layer writer records every entry as root's).
pub fn build(files: &KilnFiles, input: &FileIndex, mtime: u64) -> Result<WrittenLayer, ApiError> {
    let app = |p: &str| format!("{p}.manifest.sgx");
    let sig = |p: &str| format!("{p}.sig");
    let mut file_entries = vec![
        NewEntry::file(launcher::CONFIG_PATH, 0o644, files.launcher_json.clone()),
        NewEntry::file(app(launcher::SGX1_APP), 0o644, files.sgx1_manifest.clone()),
        NewEntry::file(sig(launcher::SGX1_APP), 0o644, files.sgx1_sig.clone()),
        NewEntry::file(app(launcher::EDMM_APP), 0o644, files.edmm_manifest.clone()),
        NewEntry::file(sig(launcher::EDMM_APP), 0o644, files.edmm_sig.clone()),
        NewEntry::file(
            format!("{}.manifest", launcher::DIRECT_APP),
            0o644,
            files.direct_manifest.clone(),
        ),
        NewEntry::file(CONVERSION_PATH, 0o644, files.conversion_json.clone()),
    ];
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for e in &file_entries {
        dirs.extend(parents(&e.path));
    }
    let mut host: BTreeSet<String> = BTreeSet::new();
    for h in &files.host_dirs {
        dirs.extend(parents(h));
        host.insert(h.clone());
    }
    let mut entries: Vec<NewEntry> = dirs
        .into_iter()
        .filter(|d| !host.contains(d) && input.get(d).is_none())
        .map(|d| NewEntry::dir(d, 0o755))
        .collect();
    entries.extend(host.into_iter().map(|d| NewEntry::dir(d, 0o777)));
    entries.append(&mut file_entries);
    write_layer(&entries, mtime).map_err(|e| ApiError::internal(format!("kiln layer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_a_path() {
        assert_eq!(parents("/opt/kiln/x.json"), vec!["/opt", "/opt/kiln"]);
        assert!(parents("/x").is_empty());
    }

    #[test]
    fn deterministic() {
        let f = KilnFiles {
            launcher_json: b"{}".to_vec(),
            sgx1_manifest: b"a".to_vec(),
            sgx1_sig: b"b".to_vec(),
            edmm_manifest: b"c".to_vec(),
            edmm_sig: b"d".to_vec(),
            direct_manifest: b"e".to_vec(),
            conversion_json: b"{}".to_vec(),
            host_dirs: vec!["/opt/fortanix/enclave-os/default-efs-dirs/tmp".into()],
        };
        let a = build(&f, &FileIndex::new(), 5).unwrap();
        let b = build(&f, &FileIndex::new(), 5).unwrap();
        assert_eq!(a, b);
    }
}

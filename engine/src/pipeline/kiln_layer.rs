//! The kiln layer: launcher configuration, both signed manifests, the direct-mode
//! manifest, the conversion record, kiln-init's `init.json` (with certificates) and the host
//! directories of the encrypted mounts, written deterministically (docs/image-formats.md).

use std::collections::BTreeSet;

use kiln_launcher::config as launcher;

use crate::api::ApiError;
use crate::converted_image::paths;
use crate::image::file_index::FileIndex;
use crate::image::layer_writer::{write_layer, NewEntry, WrittenLayer};

/// Where the conversion record goes.
pub const CONVERSION_PATH: &str = paths::CONVERSION_JSON;

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
    /// kiln-init's `init.json` bytes (only when certificates are requested).
    pub init_json: Option<Vec<u8>>,
    /// Host directories of the encrypted mounts.
    pub host_dirs: Vec<String>,
    /// The manifests set `sys.enable_extra_runtime_domain_names_conf`: Gramine then reads
    /// the host's `/etc/resolv.conf` at start-up and stops if it is missing.
    pub needs_resolv_conf: bool,
    /// Log files of the image linked to stdout/stderr and the relay path each is re-pointed
    /// at; when there are any, the layer also holds the relays' own links
    /// (`/opt/kiln/logs/stdout -> /proc/self/fd/61`, see `gramine::log_links`).
    pub log_links: Vec<(String, &'static str)>,
}

/// Where Gramine reads the host's DNS configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

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
    let mut file_entries = vec![
        NewEntry::file(paths::LAUNCHER_JSON, 0o644, files.launcher_json.clone()),
        NewEntry::file(paths::SGX1_MANIFEST, 0o644, files.sgx1_manifest.clone()),
        NewEntry::file(paths::SGX1_SIG, 0o644, files.sgx1_sig.clone()),
        NewEntry::file(paths::EDMM_MANIFEST, 0o644, files.edmm_manifest.clone()),
        NewEntry::file(paths::EDMM_SIG, 0o644, files.edmm_sig.clone()),
        NewEntry::file(paths::DIRECT_MANIFEST, 0o644, files.direct_manifest.clone()),
        NewEntry::file(paths::CONVERSION_JSON, 0o644, files.conversion_json.clone()),
    ];
    if let Some(init) = &files.init_json {
        file_entries.push(NewEntry::file(
            crate::gramine::init::INIT_JSON_PATH,
            0o644,
            init.clone(),
        ));
    }
    // Container runtimes bind-mount /etc/resolv.conf over this; an image without one (and
    // a runtime that does not mount it) would otherwise stop Gramine at start-up. It is a
    // runtime domain-names file, never a trusted file, so the measurement does not change.
    if files.needs_resolv_conf && input.get(RESOLV_CONF).is_none() {
        file_entries.push(NewEntry::file(RESOLV_CONF, 0o644, Vec::new()));
    }
    if !files.log_links.is_empty() {
        for (path, fd) in launcher::LOG_RELAYS {
            file_entries.push(NewEntry::symlink(path, format!("/proc/self/fd/{fd}")));
        }
        for (link, relay) in &files.log_links {
            file_entries.push(NewEntry::symlink(link.clone(), *relay));
        }
    }
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
            init_json: None,
            host_dirs: vec!["/opt/fortanix/enclave-os/default-efs-dirs/tmp".into()],
            needs_resolv_conf: true,
            log_links: Vec::new(),
        };
        let a = build(&f, &FileIndex::new(), 5).unwrap();
        let b = build(&f, &FileIndex::new(), 5).unwrap();
        assert_eq!(a, b);
    }

    fn paths(layer: &WrittenLayer) -> Vec<String> {
        let summary = crate::image::scan::scan_blob(
            &layer.digest,
            crate::image::layer_writer::LAYER_MEDIA_TYPE,
            &layer.blob,
        )
        .unwrap();
        summary.entries.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn adds_an_empty_resolv_conf_only_when_needed_and_missing() {
        let mut f = KilnFiles {
            launcher_json: b"{}".to_vec(),
            sgx1_manifest: b"a".to_vec(),
            sgx1_sig: b"b".to_vec(),
            edmm_manifest: b"c".to_vec(),
            edmm_sig: b"d".to_vec(),
            direct_manifest: b"e".to_vec(),
            conversion_json: b"{}".to_vec(),
            init_json: None,
            host_dirs: vec![],
            needs_resolv_conf: true,
            log_links: Vec::new(),
        };
        let missing = paths(&build(&f, &FileIndex::new(), 5).unwrap());
        assert!(missing.iter().any(|p| p == RESOLV_CONF), "{missing:?}");
        assert!(missing.iter().any(|p| p == "/etc"), "{missing:?}");

        let mut with = FileIndex::new();
        with.entries.insert(
            RESOLV_CONF.into(),
            crate::image::file_index::FileEntry {
                kind: crate::image::file_index::FileKind::Symlink {
                    target: "../run/resolv.conf".into(),
                },
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        let present = paths(&build(&f, &with, 5).unwrap());
        assert!(!present.iter().any(|p| p == RESOLV_CONF), "{present:?}");

        f.needs_resolv_conf = false;
        let unneeded = paths(&build(&f, &FileIndex::new(), 5).unwrap());
        assert!(!unneeded.iter().any(|p| p == RESOLV_CONF), "{unneeded:?}");
    }
}

//! What a layer scan yields: one small, cacheable record per layer.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::serde_hex;

/// Files whose contents a scan captures (when at most [`CAPTURE_LIMIT`] bytes), so the
/// enclave spec can resolve users and groups, and find the image's library directories,
/// without fetching the layer again.
pub const CAPTURED_PATHS: &[&str] = &["/etc/passwd", "/etc/group", "/etc/ld.so.conf"];

/// Directories whose files a scan captures like [`CAPTURED_PATHS`] (the dynamic linker's
/// configuration; see `gramine::runtime_libc`).
pub const CAPTURED_DIRS: &[&str] = &["/etc/ld.so.conf.d/"];

/// Largest captured file, in bytes; larger ones are indexed but not captured.
pub const CAPTURE_LIMIT: u64 = 1 << 20;

/// What one tar entry of a layer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    Regular {
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the contents.
        #[serde(with = "serde_hex::hash32")]
        sha256: [u8; 32],
    },
    /// A directory.
    Directory,
    /// A symbolic link (target as stored, never followed).
    Symlink {
        /// The link target.
        target: String,
    },
    /// A hard link to another path of this or a lower layer (normalised absolute path).
    Hardlink {
        /// The path linked to.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// An OCI whiteout (`.wh.NAME`): the entry's path (`DIR/NAME`) and its subtree are
    /// deleted from lower layers.
    Whiteout,
    /// An OCI opaque whiteout (`DIR/.wh..wh..opq`): the entry's path is `DIR`, whose
    /// contents from lower layers are hidden.
    Opaque,
}

/// One tar entry of a layer, with its path normalised (`/usr/bin/env`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    /// Absolute, normalised path (for whiteouts: the path deleted; for opaque
    /// whiteouts: the directory made opaque).
    pub path: String,
    /// What the entry is.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits (with setuid/setgid/sticky), without file-type bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// Everything the pipeline needs to know about one layer, in tar order. Small enough to
/// cache per compressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// Digest of the compressed blob, `sha256:<hex>` (verified while scanning).
    pub digest: String,
    /// Digest of the uncompressed tar (the OCI `diff_id`), `sha256:<hex>`, when the scan
    /// was asked for it ([`super::LayerScanner::computing_diff_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Size of the compressed blob in bytes.
    pub compressed_size: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// The entries, in tar order.
    pub entries: Vec<LayerEntry>,
    /// Contents of [`CAPTURED_PATHS`] present in this layer as regular files of at most
    /// [`CAPTURE_LIMIT`] bytes, keyed by path.
    #[serde(with = "serde_hex::bytes_map", default)]
    pub captured: BTreeMap<String, Vec<u8>>,
    /// glibc releases (`2.36`) found in this layer's C library files, keyed by the file's
    /// hex SHA-256 ([`super::libc_probe`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub libc_versions: BTreeMap<String, String>,
    /// What the scan recorded ([`SUMMARY_FORMAT`]); summaries cached by an older engine
    /// lack facts a newer one needs, so [`LayerSummary::from_bytes`] refuses them and the
    /// layer is scanned again.
    #[serde(default)]
    pub format: u32,
}

/// The current [`LayerSummary::format`]: 2 added [`LayerSummary::libc_versions`].
pub const SUMMARY_FORMAT: u32 = 2;

/// Why a serialised summary cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum SummaryDecodeError {
    /// Not a summary.
    #[error("layer summary: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by another engine version: it may lack facts this one needs.
    #[error("layer summary: format {found}, expected {SUMMARY_FORMAT}")]
    Format {
        /// The format found.
        found: u32,
    },
}

impl LayerSummary {
    /// Serialises the summary (JSON) for a cache.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising these plain types into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a summary written by [`LayerSummary::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SummaryDecodeError> {
        let summary: Self = serde_json::from_slice(bytes)?;
        if summary.format != SUMMARY_FORMAT {
            return Err(SummaryDecodeError::Format {
                found: summary.format,
            });
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_through_bytes() {
        let summary = LayerSummary {
            digest: "sha256:00".into(),
            diff_id: Some("sha256:11".into()),
            compressed_size: 1,
            uncompressed_size: 2,
            entries: vec![
                LayerEntry {
                    path: "/etc/passwd".into(),
                    kind: EntryKind::Regular {
                        size: 4,
                        sha256: [7; 32],
                    },
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                LayerEntry {
                    path: "/x".into(),
                    kind: EntryKind::Whiteout,
                    mode: 0,
                    uid: 0,
                    gid: 0,
                },
            ],
            captured: [("/etc/passwd".to_string(), b"root".to_vec())].into(),
            libc_versions: Default::default(),
            format: SUMMARY_FORMAT,
        };
        let bytes = summary.to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("726f6f74"));
        assert_eq!(LayerSummary::from_bytes(&bytes).unwrap(), summary);
    }
}

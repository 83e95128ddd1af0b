//! The merged view of an image's layers: per absolute path its kind, mode, owner, size
//! and SHA-256 (for regular files).

use std::collections::BTreeMap;

/// What a path in the merged image filesystem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (hardlinks resolve to the regular file they name, with its hash).
    Regular {
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the contents.
        sha256: [u8; 32],
    },
    /// A directory.
    Directory,
    /// A symbolic link, kept as a link (never followed).
    Symlink {
        /// The link target, as stored in the layer.
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
}

/// One path of the merged image filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// What it is.
    pub kind: FileKind,
    /// Permission bits (and setuid/setgid/sticky), without the file-type bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The merged view of all layers, keyed by absolute, normalised path (`/`, `/etc`,
/// `/etc/passwd`; no trailing slash, no `.` or `..` components). Sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileIndex {
    /// Every path of the merged filesystem.
    pub entries: BTreeMap<String, FileEntry>,
    /// Contents of the few small files the enclave spec must read (`/etc/passwd`,
    /// `/etc/group`), as they stand in the merged view; keyed like `entries`.
    pub captured: BTreeMap<String, Vec<u8>>,
}

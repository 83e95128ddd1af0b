//! The merged view of an image's layers: per absolute path its kind, mode, owner, size
//! and SHA-256 (for regular files).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::limits::{ImageLimits, LimitExceeded, INDEX_ENTRY_OVERHEAD};
use crate::image::scan::path as scan_path;
use crate::image::scan::serde_hex;
use crate::image::scan::{EntryKind, LayerSummary, CAPTURED_DIRS, CAPTURED_PATHS};

/// What a path in the merged image filesystem is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file (hardlinks resolve to the regular file they name, with its hash).
    Regular {
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the contents.
        #[serde(with = "serde_hex::hash32")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// What it is.
    #[serde(flatten)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIndex {
    /// Every path of the merged filesystem.
    pub entries: BTreeMap<String, FileEntry>,
    /// Contents of the few small files the enclave spec must read (`/etc/passwd`,
    /// `/etc/group`), as they stand in the merged view; keyed like `entries`.
    #[serde(with = "serde_hex::bytes_map", default)]
    pub captured: BTreeMap<String, Vec<u8>>,
    /// glibc releases found in the layers' C library files, by the file's hex SHA-256
    /// ([`crate::image::scan::libc_probe`]); look a resolved `libc.so.6` up here.
    #[serde(default)]
    pub libc_versions: BTreeMap<String, String>,
}

/// Why layers cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A hard link names a path that does not exist in this or a lower layer.
    #[error("layer {layer}: hard link {path:?} points to {target:?}, which does not exist")]
    HardlinkTargetMissing {
        /// The layer digest.
        layer: String,
        /// The link.
        path: String,
        /// What it points to.
        target: String,
    },
    /// The merged index would exceed a limit (`image-entries`, `index-bytes`).
    #[error("layer {layer}: {source}")]
    Limit {
        /// The layer digest being merged.
        layer: String,
        /// Which limit, and what exceeded it.
        source: LimitExceeded,
    },
    /// A hard link names a directory.
    #[error("layer {layer}: hard link {path:?} points to directory {target:?}")]
    HardlinkToDirectory {
        /// The layer digest.
        layer: String,
        /// The link.
        path: String,
        /// What it points to.
        target: String,
    },
}

/// Why a path cannot be resolved in the merged view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A component does not exist.
    #[error("resolving {path:?}: {missing:?} does not exist in the image")]
    NotFound {
        /// The path asked for.
        path: String,
        /// The first path that is missing.
        missing: String,
    },
    /// A non-final component is not a directory (nor a link to one).
    #[error("resolving {path:?}: {component:?} is not a directory")]
    NotADirectory {
        /// The path asked for.
        path: String,
        /// The offending component's path.
        component: String,
    },
    /// More than [`MAX_SYMLINK_HOPS`] symbolic links.
    #[error("resolving {path:?}: too many levels of symbolic links")]
    TooManyLinks {
        /// The path asked for.
        path: String,
    },
}

/// Most symbolic links followed while resolving one path (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

impl FileIndex {
    /// An index holding only the root directory (mode 0755, owned by root).
    pub fn new() -> Self {
        let mut entries = BTreeMap::new();
        entries.insert("/".to_string(), implicit_dir());
        Self {
            entries,
            captured: BTreeMap::new(),
            libc_versions: BTreeMap::new(),
        }
    }

    /// Merges layer summaries, lowest layer first, with the default
    /// [`ImageLimits`].
    pub fn from_layers<'a>(
        layers: impl IntoIterator<Item = &'a LayerSummary>,
    ) -> Result<Self, MergeError> {
        Self::from_layers_limited(layers, &ImageLimits::default())
    }

    /// Merges layer summaries, lowest layer first, refusing an index of more than
    /// `image-entries` paths (implicit parent directories count) or more than
    /// `index-bytes` of memory (path bytes plus [`INDEX_ENTRY_OVERHEAD`] per path).
    /// The count is of paths present after each insertion, so memory and CPU stay
    /// bounded by the limits whatever the layers hold.
    pub fn from_layers_limited<'a>(
        layers: impl IntoIterator<Item = &'a LayerSummary>,
        limits: &ImageLimits,
    ) -> Result<Self, MergeError> {
        let mut index = Self::new();
        let mut budget = Budget::new(limits, &index);
        for layer in layers {
            index.merge(layer, &mut budget)?;
        }
        Ok(index)
    }

    /// Lays `layer` over the current view with OCI semantics: first its whiteouts
    /// (`.wh.NAME` deletes NAME and its subtree; an opaque directory loses its lower
    /// contents), then its entries in tar order (a later entry replaces an earlier one; a
    /// directory over a directory keeps the children; a non-directory over a directory
    /// removes the subtree; missing parents become directories 0755 root:root; a hard
    /// link takes its target's kind, metadata and captured contents).
    pub fn apply_layer(&mut self, layer: &LayerSummary) -> Result<(), MergeError> {
        let mut budget = Budget::new(&ImageLimits::default(), self);
        self.merge(layer, &mut budget)
    }

    fn merge(&mut self, layer: &LayerSummary, budget: &mut Budget) -> Result<(), MergeError> {
        budget.layer.clone_from(&layer.digest);
        // Keyed by content hash: at most one entry per distinct C library file.
        for (hash, version) in &layer.libc_versions {
            self.libc_versions.insert(hash.clone(), version.clone());
        }
        if !self.entries.contains_key("/") {
            self.entries.insert("/".to_string(), implicit_dir());
            budget.added("/");
        }
        for e in &layer.entries {
            budget.check_path(&e.path)?;
            match e.kind {
                EntryKind::Whiteout => self.remove_subtree(&e.path, true, budget),
                EntryKind::Opaque => self.remove_subtree(&e.path, false, budget),
                _ => {}
            }
        }
        for e in &layer.entries {
            let (entry, captured) = match &e.kind {
                EntryKind::Whiteout | EntryKind::Opaque => continue,
                EntryKind::Hardlink { target } => {
                    let linked = self.entries.get(target).ok_or_else(|| {
                        MergeError::HardlinkTargetMissing {
                            layer: layer.digest.clone(),
                            path: e.path.clone(),
                            target: target.clone(),
                        }
                    })?;
                    if linked.kind == FileKind::Directory {
                        return Err(MergeError::HardlinkToDirectory {
                            layer: layer.digest.clone(),
                            path: e.path.clone(),
                            target: target.clone(),
                        });
                    }
                    (linked.clone(), self.captured.get(target).cloned())
                }
                kind => {
                    let kind = match kind {
                        EntryKind::Regular { size, sha256 } => FileKind::Regular {
                            size: *size,
                            sha256: *sha256,
                        },
                        EntryKind::Directory => FileKind::Directory,
                        EntryKind::Symlink { target } => FileKind::Symlink {
                            target: target.clone(),
                        },
                        EntryKind::CharDevice { major, minor } => FileKind::CharDevice {
                            major: *major,
                            minor: *minor,
                        },
                        EntryKind::BlockDevice { major, minor } => FileKind::BlockDevice {
                            major: *major,
                            minor: *minor,
                        },
                        _ => FileKind::Fifo,
                    };
                    let entry = FileEntry {
                        kind,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                    };
                    (entry, layer.captured.get(&e.path).cloned())
                }
            };
            self.insert(&e.path, entry, captured, budget)?;
        }
        Ok(())
    }

    /// The entry at `path` (absolute, normalised).
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    /// Every entry strictly below directory `dir` (absolute, normalised), in path order.
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a FileEntry)> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != "/")
    }

    /// Resolves `path` as the kernel would inside the image with the image root as `/`:
    /// symbolic links are followed in every component, including the last; `..` stops
    /// at the root. Returns the resolved path (an entry of the index).
    pub fn resolve(&self, path: &str) -> Result<String, ResolveError> {
        let mut pending: std::collections::VecDeque<String> =
            path.split('/').map(str::to_string).collect();
        let mut cur = "/".to_string();
        let mut hops = 0;
        while let Some(comp) = pending.pop_front() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    cur = scan_path::parent(&cur).unwrap_or("/").to_string();
                    continue;
                }
                _ => {}
            }
            let next = scan_path::join(&cur, &comp);
            let is_last = pending.iter().all(|c| c.is_empty() || c == ".");
            match self.entries.get(&next).map(|e| &e.kind) {
                None => {
                    return Err(ResolveError::NotFound {
                        path: path.to_string(),
                        missing: next,
                    })
                }
                Some(FileKind::Symlink { target }) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ResolveError::TooManyLinks {
                            path: path.to_string(),
                        });
                    }
                    if target.starts_with('/') {
                        cur = "/".to_string();
                    }
                    for c in target.split('/').rev() {
                        pending.push_front(c.to_string());
                    }
                }
                Some(FileKind::Directory) => cur = next,
                Some(_) if is_last => cur = next,
                Some(_) => {
                    return Err(ResolveError::NotADirectory {
                        path: path.to_string(),
                        component: next,
                    })
                }
            }
        }
        Ok(cur)
    }

    fn insert(
        &mut self,
        path: &str,
        entry: FileEntry,
        captured: Option<Vec<u8>>,
        budget: &mut Budget,
    ) -> Result<(), MergeError> {
        self.ensure_parents(path, budget)?;
        let is_dir = entry.kind == FileKind::Directory;
        if let Some(old) = self.entries.get(path) {
            if old.kind == FileKind::Directory && !is_dir {
                self.remove_subtree(path, false, budget);
            }
        }
        if self.entries.insert(path.to_string(), entry).is_none() {
            budget.added(path);
            budget.check(self.entries.len())?;
        }
        match captured {
            Some(bytes)
                if CAPTURED_PATHS.contains(&path)
                    || CAPTURED_DIRS.iter().any(|d| path.starts_with(d)) =>
            {
                self.captured.insert(path.to_string(), bytes);
            }
            _ => {
                self.captured.remove(path);
            }
        }
        Ok(())
    }

    /// Makes every ancestor of `path` a directory (creating it 0755 root:root, or
    /// replacing a non-directory). Each created ancestor is a new path of the index and
    /// is counted against the budget as it is made (before the next is), so a deep
    /// path costs at most the budget, never the square of its depth.
    fn ensure_parents(&mut self, path: &str, budget: &mut Budget) -> Result<(), MergeError> {
        // The missing ancestors are `path[..end]` for the ends collected here: one
        // slice of `path` each, no copies, until they are inserted.
        let mut missing: Vec<usize> = Vec::new();
        let mut cur = scan_path::parent(path);
        while let Some(dir) = cur {
            match self.entries.get(dir) {
                Some(e) if e.kind == FileKind::Directory => break,
                _ => missing.push(dir.len()),
            }
            cur = scan_path::parent(dir);
        }
        for end in missing.into_iter().rev() {
            let dir = path.get(..end).unwrap_or("/");
            self.captured.remove(dir);
            if self
                .entries
                .insert(dir.to_string(), implicit_dir())
                .is_none()
            {
                budget.added(dir);
                budget.check(self.entries.len())?;
            }
        }
        Ok(())
    }

    /// Removes everything below `path`, and `path` itself if `including_self`.
    fn remove_subtree(&mut self, path: &str, including_self: bool, budget: &mut Budget) {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in doomed {
            if self.entries.remove(&k).is_some() {
                budget.removed(&k);
            }
        }
        self.captured.retain(|k, _| !k.starts_with(&prefix));
        if including_self && path != "/" {
            if self.entries.remove(path).is_some() {
                budget.removed(path);
            }
            self.captured.remove(path);
        }
    }
}

/// What a merge may still add: the `image-entries` and `index-bytes` limits, and the
/// index's current size in the units of `index-bytes`.
struct Budget {
    limits: ImageLimits,
    bytes: u64,
    layer: String,
}

impl Budget {
    fn new(limits: &ImageLimits, index: &FileIndex) -> Self {
        Budget {
            limits: *limits,
            bytes: index.entries.keys().map(|k| entry_cost(k)).sum(),
            layer: String::new(),
        }
    }

    fn added(&mut self, path: &str) {
        self.bytes = self.bytes.saturating_add(entry_cost(path));
    }

    fn removed(&mut self, path: &str) {
        self.bytes = self.bytes.saturating_sub(entry_cost(path));
    }

    /// The scan's `path-bytes` and `path-depth` again, for summaries that did not come
    /// from a scan under these limits (a cache): with them, one path adds at most
    /// `path-depth` ancestors of at most `path-bytes` each.
    fn check_path(&self, path: &str) -> Result<(), MergeError> {
        let l = &self.limits;
        let hit = |source| MergeError::Limit {
            layer: self.layer.clone(),
            source,
        };
        let short: String = path.chars().take(64).collect();
        ImageLimits::check("path-bytes", l.path_bytes, path.len() as u64, || {
            format!("path of {} bytes ({short:?}...)", path.len())
        })
        .map_err(hit)?;
        let depth = path.bytes().filter(|&b| b == b'/').count() as u64;
        ImageLimits::check("path-depth", l.path_depth, depth, || {
            format!("path of {depth} components ({short:?}...)")
        })
        .map_err(hit)
    }

    fn check(&self, entries: usize) -> Result<(), MergeError> {
        let l = &self.limits;
        let hit = |source| MergeError::Limit {
            layer: self.layer.clone(),
            source,
        };
        ImageLimits::check("image-entries", l.image_entries, entries as u64, || {
            format!("more than {} paths in the merged image", l.image_entries)
        })
        .map_err(hit)?;
        ImageLimits::check("index-bytes", l.index_bytes, self.bytes, || {
            format!(
                "file index of more than {} bytes ({} paths)",
                l.index_bytes, entries
            )
        })
        .map_err(hit)
    }
}

/// What one path costs in the index, in the units of `index-bytes`.
fn entry_cost(path: &str) -> u64 {
    path.len() as u64 + INDEX_ENTRY_OVERHEAD
}

fn implicit_dir() -> FileEntry {
    FileEntry {
        kind: FileKind::Directory,
        mode: 0o755,
        uid: 0,
        gid: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::scan::LayerEntry;

    fn file(path: &str, size: u64, tag: u8) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::Regular {
                size,
                sha256: [tag; 32],
            },
            mode: 0o644,
            uid: 1,
            gid: 2,
        }
    }

    fn with(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    fn layer(name: &str, entries: Vec<LayerEntry>) -> LayerSummary {
        LayerSummary {
            digest: name.into(),
            diff_id: None,
            compressed_size: 0,
            uncompressed_size: 0,
            entries,
            captured: BTreeMap::new(),
            libc_versions: Default::default(),
            format: crate::image::scan::summary::SUMMARY_FORMAT,
        }
    }

    fn paths(index: &FileIndex) -> Vec<&str> {
        index.entries.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn whiteouts_opaque_dirs_and_overrides() {
        let l1 = layer(
            "l1",
            vec![
                with("/a", EntryKind::Directory),
                file("/a/x", 1, 1),
                with("/a/sub", EntryKind::Directory),
                file("/a/sub/y", 2, 2),
                file("/b/deep/z", 3, 3), // implicit parents
                file("/c", 4, 4),
                with("/d", EntryKind::Directory),
                file("/d/old", 5, 5),
            ],
        );
        let l2 = layer(
            "l2",
            vec![
                with("/a/sub", EntryKind::Whiteout),
                file("/c", 40, 40),
                file("/d/new", 6, 6),
                with("/d", EntryKind::Opaque),
                with("/b", EntryKind::Whiteout),
                with(
                    "/l",
                    EntryKind::Symlink {
                        target: "../c".into(),
                    },
                ),
            ],
        );
        let index = FileIndex::from_layers([&l1, &l2]).unwrap();
        assert_eq!(
            paths(&index),
            ["/", "/a", "/a/x", "/c", "/d", "/d/new", "/l"]
        );
        assert_eq!(
            index.get("/c").unwrap().kind,
            FileKind::Regular {
                size: 40,
                sha256: [40; 32]
            }
        );
        let json = serde_json::to_string(&index).unwrap();
        assert_eq!(serde_json::from_str::<FileIndex>(&json).unwrap(), index);
        let l1_only = FileIndex::from_layers([&l1]).unwrap();
        assert_eq!(l1_only.get("/b/deep").unwrap(), &implicit_dir());
    }

    #[test]
    fn hardlinks_resolve_and_dirs_replace() {
        let mut l1 = layer(
            "l1",
            vec![
                file("/etc/passwd", 5, 9),
                with(
                    "/etc/pw",
                    EntryKind::Hardlink {
                        target: "/etc/passwd".into(),
                    },
                ),
                with("/x", EntryKind::Directory),
                file("/x/inner", 1, 1),
            ],
        );
        l1.captured.insert("/etc/passwd".into(), b"root\n".to_vec());
        let l2 = layer(
            "l2",
            vec![
                file("/x", 7, 7), // a file over a directory drops the subtree
                with(
                    "/etc/group",
                    EntryKind::Hardlink {
                        target: "/etc/passwd".into(),
                    },
                ),
            ],
        );
        let index = FileIndex::from_layers([&l1, &l2]).unwrap();
        assert_eq!(index.get("/etc/pw"), index.get("/etc/passwd"));
        assert!(index.get("/x/inner").is_none());
        assert_eq!(index.captured["/etc/passwd"], b"root\n");
        assert_eq!(index.captured["/etc/group"], b"root\n");

        let l3 = layer("l3", vec![with("/etc/passwd", EntryKind::Whiteout)]);
        let index = FileIndex::from_layers([&l1, &l2, &l3]).unwrap();
        assert!(!index.captured.contains_key("/etc/passwd"));

        let bad = layer(
            "bad",
            vec![with(
                "/h",
                EntryKind::Hardlink {
                    target: "/nope".into(),
                },
            )],
        );
        let err = FileIndex::from_layers([&bad]).unwrap_err();
        assert!(err.to_string().contains("/nope"), "{err}");
    }

    #[test]
    fn resolves_symlinks_like_the_kernel() {
        let sym = |p: &str, t: &str| {
            with(
                p,
                EntryKind::Symlink {
                    target: t.to_string(),
                },
            )
        };
        let l = layer(
            "l",
            vec![
                with("/usr", EntryKind::Directory),
                with("/usr/lib", EntryKind::Directory),
                file("/usr/lib/libc.so.6", 10, 1),
                file("/usr/bin/python3.11", 20, 2),
                sym("/usr/bin/python3", "python3.11"),
                sym("/usr/bin/python", "/usr/bin/python3"),
                sym("/lib", "usr/lib"),
                sym("/lib64", "/lib/../lib"),
                sym("/escape", "../../../usr/bin/python"),
                sym("/loop1", "loop2"),
                sym("/loop2", "loop1"),
                sym("/dangling", "/nope"),
            ],
        );
        let index = FileIndex::from_layers([&l]).unwrap();
        assert_eq!(
            index.resolve("/usr/bin/python").unwrap(),
            "/usr/bin/python3.11"
        );
        assert_eq!(
            index.resolve("/lib/libc.so.6").unwrap(),
            "/usr/lib/libc.so.6"
        );
        assert_eq!(
            index.resolve("/lib64/libc.so.6").unwrap(),
            "/usr/lib/libc.so.6"
        );
        assert_eq!(index.resolve("/escape").unwrap(), "/usr/bin/python3.11");
        assert_eq!(index.resolve("/lib").unwrap(), "/usr/lib");
        assert_eq!(index.resolve("/").unwrap(), "/");
        assert!(matches!(
            index.resolve("/loop1"),
            Err(ResolveError::TooManyLinks { .. })
        ));
        assert!(matches!(
            index.resolve("/dangling"),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            index.resolve("/usr/bin/python3.11/x"),
            Err(ResolveError::NotADirectory { .. })
        ));
        let below: Vec<_> = index.under("/usr/bin").map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            below,
            ["/usr/bin/python", "/usr/bin/python3", "/usr/bin/python3.11"]
        );
        assert_eq!(index.under("/").count(), index.entries.len() - 1);
    }
}

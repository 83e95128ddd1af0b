//! Path lookups in the image's merged filesystem ([`FileIndex`]): symlinks are followed
//! inside the image root only (an absolute target is taken relative to the image root, and
//! `..` never climbs above `/`), as a container runtime would see them.

use std::collections::VecDeque;

use super::paths::{join, parent};
use crate::image::file_index::{FileEntry, FileIndex, FileKind};

/// Most symlinks followed in one lookup (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// What a path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node<'a> {
    /// A regular file.
    File(&'a FileEntry),
    /// A directory (listed, or implied by the paths below it).
    Dir,
    /// A device, fifo or other non-regular file.
    Special(&'a FileEntry),
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such path.
    #[error("`{0}` does not exist in the image")]
    NotFound(String),
    /// A non-directory was used as a directory.
    #[error("`{0}` is not a directory")]
    NotADirectory(String),
    /// Too many symlinks.
    #[error("too many levels of symbolic links at `{0}`")]
    Loop(String),
}

/// Whether `path` is a directory implied by entries below it.
fn implied_dir(index: &FileIndex, path: &str) -> bool {
    let prefix = format!("{path}/");
    index
        .entries
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
}

/// Resolves an absolute, normalised path, following every symlink inside the image root.
/// Returns the real path and what is there.
pub fn resolve<'a>(index: &'a FileIndex, path: &str) -> Result<(String, Node<'a>), LookupError> {
    let mut queue: VecDeque<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut cur = String::from("/");
    let mut node: Node<'a> = Node::Dir;
    let mut hops = 0;
    while let Some(comp) = queue.pop_front() {
        if !matches!(node, Node::Dir) {
            return Err(LookupError::NotADirectory(cur));
        }
        if comp == "." {
            continue;
        }
        if comp == ".." {
            cur = parent(&cur).to_string();
            continue;
        }
        let next = join(&cur, &comp).ok_or_else(|| LookupError::NotFound(path.to_string()))?;
        match index.entries.get(&next) {
            Some(FileEntry {
                kind: FileKind::Symlink { target },
                ..
            }) => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(LookupError::Loop(next));
                }
                let mut parts: Vec<String> = target
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if target.starts_with('/') {
                    cur = String::from("/");
                }
                parts.extend(queue.drain(..));
                queue = parts.into();
                node = Node::Dir;
            }
            Some(
                e @ FileEntry {
                    kind: FileKind::Regular { .. },
                    ..
                },
            ) => {
                cur = next;
                node = Node::File(e);
            }
            Some(FileEntry {
                kind: FileKind::Directory,
                ..
            }) => {
                cur = next;
                node = Node::Dir;
            }
            Some(e) => {
                cur = next;
                node = Node::Special(e);
            }
            None if implied_dir(index, &next) => {
                cur = next;
                node = Node::Dir;
            }
            None => return Err(LookupError::NotFound(next)),
        }
    }
    Ok((cur, node))
}

/// Every entry strictly below the directory `dir` (normalised), in path order.
pub fn descendants<'a>(
    index: &'a FileIndex,
    dir: &str,
) -> impl Iterator<Item = (&'a String, &'a FileEntry)> + 'a {
    let prefix = if dir == "/" {
        String::from("/")
    } else {
        format!("{dir}/")
    };
    let root = dir == "/";
    index
        .entries
        .range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .filter(move |(k, _)| !(root && k.as_str() == "/"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an index from (path, kind) pairs; regular files get sha256 = [first byte; 32].
    pub(crate) fn index(entries: &[(&str, &str)]) -> FileIndex {
        let mut idx = FileIndex::default();
        for (p, k) in entries {
            let kind = if *k == "dir" {
                FileKind::Directory
            } else if let Some(t) = k.strip_prefix("->") {
                FileKind::Symlink {
                    target: t.to_string(),
                }
            } else if *k == "fifo" {
                FileKind::Fifo
            } else {
                let b = k.as_bytes().first().copied().unwrap_or(0);
                FileKind::Regular {
                    size: k.len() as u64,
                    sha256: [b; 32],
                }
            };
            let mode = if k.starts_with('x') { 0o755 } else { 0o644 };
            idx.entries.insert(
                p.to_string(),
                FileEntry {
                    kind,
                    mode,
                    uid: 0,
                    gid: 0,
                },
            );
        }
        idx
    }

    #[test]
    fn follows_symlinks_inside_the_root() {
        let idx = index(&[
            ("/", "dir"),
            ("/usr", "dir"),
            ("/usr/bin", "dir"),
            ("/usr/bin/python3.11", "xpy"),
            ("/usr/bin/python3", "->python3.11"),
            ("/usr/bin/python", "->/usr/bin/python3"),
            ("/bin", "->usr/bin"),
            ("/escape", "->../../../usr/bin/python"),
            ("/loop1", "->loop2"),
            ("/loop2", "->loop1"),
            ("/implied/a/file", "f"),
            ("/pipe", "fifo"),
        ]);
        let (p, n) = resolve(&idx, "/bin/python").unwrap();
        assert_eq!(p, "/usr/bin/python3.11");
        assert!(matches!(n, Node::File(_)));
        assert_eq!(resolve(&idx, "/escape").unwrap().0, "/usr/bin/python3.11");
        assert_eq!(
            resolve(&idx, "/bin").unwrap(),
            ("/usr/bin".to_string(), Node::Dir)
        );
        assert_eq!(resolve(&idx, "/implied/a").unwrap().1, Node::Dir);
        assert!(matches!(
            resolve(&idx, "/pipe").unwrap().1,
            Node::Special(_)
        ));
        assert!(matches!(resolve(&idx, "/loop1"), Err(LookupError::Loop(_))));
        assert!(matches!(
            resolve(&idx, "/nope"),
            Err(LookupError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&idx, "/usr/bin/python3.11/x"),
            Err(LookupError::NotADirectory(_))
        ));
    }

    #[test]
    fn lists_descendants() {
        let idx = index(&[
            ("/", "dir"),
            ("/a", "dir"),
            ("/a/b", "f"),
            ("/a-b", "f"),
            ("/ab", "f"),
        ]);
        let d: Vec<_> = descendants(&idx, "/a").map(|(k, _)| k.as_str()).collect();
        assert_eq!(d, ["/a/b"]);
        let all: Vec<_> = descendants(&idx, "/").map(|(k, _)| k.as_str()).collect();
        assert_eq!(all, ["/a", "/a-b", "/a/b", "/ab"]);
    }
}

//! roDirs / rwDirs / encryptedDirs → Gramine's trusted files, allowed files and encrypted
//! mounts.
//!
//! Every path of the image gets the kind of the most specific (longest) entry of the three
//! lists that contains it; a path under none of them is neither trusted nor allowed, so
//! Gramine's strict file check refuses it.
//!
//! Trusted files are the *paths the app opens*, because Gramine v1.9 checks the
//! normalised path an app opens against `sgx.trusted_files` without resolving symlinks
//! (the host resolves them when it opens the file). So:
//! - every regular file under a read-only dir is a trusted file, with its own hash;
//! - a symlink (under a read-only dir) that resolves, inside the image root, to a regular
//!   file is a trusted file under the *link's* path, with the *target's* hash
//!   (`/usr/lib/libz.so.1 -> libz.so.1.3` lists both paths, same hash);
//! - a symlink that resolves to a directory makes every file below that directory
//!   reachable under the link's path too (`/lib -> usr/lib` on merged-/usr distributions,
//!   which the ELF interpreter path `/lib64/ld-linux-x86-64.so.2` needs), recursively up to
//!   [`MAX_DIR_LINK_DEPTH`] nested directory links; a link to an ancestor of itself (a
//!   cycle) is not followed;
//! - dangling links, links to devices and links whose target lies in an rw or encrypted
//!   dir are not trusted files (the last would fail the hash check at run time anyway).
//!
//! This is what Gramine Shielded Containers does too (it walks the image with
//! `followlinks=True` and lists every path that is a file).
//!
//! Excluded from the trusted set: `/proc`, `/sys`, `/dev` (Gramine mounts its own
//! pseudo-filesystems there, so image files there are invisible), kiln's own directory
//! (`/opt/kiln`, which holds the runtime and the manifests), the runtime prefix, and the
//! host side of encrypted dirs ([`EFS_HOST_ROOT`]).
//!
//! Files (or anything else) present in the image inside an encrypted dir are hidden by the
//! encrypted mount (they were not sealed with the enclave's key, which exists only inside
//! the enclave on the target CPU): they are reported by name.

use std::collections::BTreeMap;

use super::fsview::{descendants, resolve, Node};
use super::paths::is_within;
use crate::image::file_index::{FileEntry, FileIndex, FileKind};

/// Where encrypted dirs keep their (encrypted) contents in the container filesystem.
pub const EFS_HOST_ROOT: &str = "/opt/fortanix/enclave-os/default-efs-dirs";
/// kiln's directory in the output image (runtime, manifests, launcher).
pub const KILN_ROOT: &str = "/opt/kiln";
/// Paths where Gramine mounts its own pseudo-filesystems.
pub const PSEUDO_FS: [&str; 3] = ["/dev", "/proc", "/sys"];
/// Deepest nesting of directory symlinks followed when listing trusted files.
pub const MAX_DIR_LINK_DEPTH: usize = 8;
/// Most trusted-file entries added through directory symlinks (a guard against images
/// with many links to big directories); links beyond it are skipped and reported.
pub const MAX_LINK_ALIASES: usize = 100_000;
/// Most paths named in one warning.
pub const MAX_NAMED: usize = 10;

/// The kind of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DirKind {
    /// Read-only, integrity-protected.
    ReadOnly,
    /// Unprotected read-write.
    ReadWrite,
    /// Encrypted (sealed).
    Encrypted,
}

/// The three lists, for lookups by path.
#[derive(Debug, Clone)]
pub struct DirRules {
    rules: Vec<(String, DirKind)>,
}

impl DirRules {
    /// From normalised lists.
    pub fn new(ro: &[String], rw: &[String], enc: &[String]) -> Self {
        let mut rules = Vec::new();
        rules.extend(ro.iter().map(|p| (p.clone(), DirKind::ReadOnly)));
        rules.extend(rw.iter().map(|p| (p.clone(), DirKind::ReadWrite)));
        rules.extend(enc.iter().map(|p| (p.clone(), DirKind::Encrypted)));
        // Longest first, so the first match is the most specific.
        rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Self { rules }
    }

    /// The kind of `path`, from the most specific entry containing it.
    pub fn classify(&self, path: &str) -> Option<DirKind> {
        self.rules
            .iter()
            .find(|(d, _)| is_within(path, d))
            .map(|(_, k)| *k)
    }

    /// The most specific entry containing `path`.
    pub fn owner(&self, path: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|(d, _)| is_within(path, d))
            .map(|(d, _)| d.as_str())
    }
}

/// The result of the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedSet {
    /// Trusted files: path → SHA-256, sorted by path.
    pub files: BTreeMap<String, [u8; 32]>,
    /// Encrypted dir → image paths hidden by its mount.
    pub hidden_by_encrypted: BTreeMap<String, Vec<String>>,
    /// Directory links not followed: cycles, nesting deeper than [`MAX_DIR_LINK_DEPTH`],
    /// or past [`MAX_LINK_ALIASES`].
    pub skipped_links: Vec<String>,
}

struct Walk<'a> {
    index: &'a FileIndex,
    rules: &'a DirRules,
    excluded: &'a [String],
    out: TrustedSet,
    aliases: usize,
}

impl Walk<'_> {
    fn wanted(&self, view: &str) -> bool {
        self.rules.classify(view) == Some(DirKind::ReadOnly)
            && !self.excluded.iter().any(|x| is_within(view, x))
    }

    /// Whether the real path a link resolves to may be trusted (not rw/encrypted).
    fn target_ok(&self, real: &str) -> bool {
        !matches!(
            self.rules.classify(real),
            Some(DirKind::ReadWrite | DirKind::Encrypted)
        )
    }

    /// Lists the files below real directory `real_dir` under the view prefix `view_dir`.
    /// `depth` counts directory links followed; `chain` the real dirs being walked.
    fn walk(&mut self, view_dir: &str, real_dir: &str, depth: usize, chain: &mut Vec<String>) {
        let index = self.index;
        for (path, entry) in descendants(index, real_dir) {
            let rel = if real_dir == "/" {
                &path[..]
            } else {
                &path[real_dir.len()..]
            };
            let view = if view_dir == "/" {
                rel.to_string()
            } else {
                format!("{view_dir}{rel}")
            };
            match &entry.kind {
                FileKind::Regular { sha256, .. } if self.wanted(&view) => {
                    if depth > 0 {
                        self.aliases += 1;
                    }
                    self.out.files.entry(view).or_insert(*sha256);
                }
                FileKind::Symlink { .. } => {
                    // Only links under a ro dir (or dirs through which ro paths pass) matter;
                    // a link under an rw/encrypted dir is not followed.
                    if !self.wanted(&view) && !self.has_ro_below(&view) {
                        continue;
                    }
                    match resolve(index, path) {
                        Ok((
                            real,
                            Node::File(FileEntry {
                                kind: FileKind::Regular { sha256, .. },
                                ..
                            }),
                        )) if self.wanted(&view) && self.target_ok(&real) => {
                            self.out.files.entry(view).or_insert(*sha256);
                        }
                        Ok((real, Node::Dir)) => {
                            let cyclic = is_within(path, &real)
                                || chain.iter().any(|c| is_within(c, &real) || c == &real);
                            if cyclic
                                || depth >= MAX_DIR_LINK_DEPTH
                                || self.aliases >= MAX_LINK_ALIASES
                            {
                                self.out.skipped_links.push(view);
                                continue;
                            }
                            if !self.target_ok(&real) {
                                continue;
                            }
                            chain.push(real.clone());
                            self.walk(&view, &real, depth + 1, chain);
                            chain.pop();
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether some ro rule lies below `view` (a link to a dir may lead into one).
    fn has_ro_below(&self, view: &str) -> bool {
        self.rules
            .rules
            .iter()
            .any(|(d, k)| *k == DirKind::ReadOnly && is_within(d, view))
    }
}

/// Walks the image: trusted files under read-only dirs, and what encrypted dirs hide.
pub fn collect(
    index: &FileIndex,
    rules: &DirRules,
    encrypted: &[String],
    excluded: &[String],
) -> TrustedSet {
    let mut w = Walk {
        index,
        rules,
        excluded,
        out: TrustedSet::default(),
        aliases: 0,
    };
    let mut chain = vec![String::from("/")];
    w.walk("/", "/", 0, &mut chain);
    let mut out = w.out;
    for e in encrypted {
        let hidden: Vec<String> = descendants(index, e).map(|(k, _)| k.clone()).collect();
        if !hidden.is_empty() {
            out.hidden_by_encrypted.insert(e.clone(), hidden);
        }
    }
    out
}

/// "a, b, c and 7 more" for warnings.
pub fn name_some(paths: &[String]) -> String {
    let mut s = paths
        .iter()
        .take(MAX_NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > MAX_NAMED {
        s.push_str(&format!(" and {} more", paths.len() - MAX_NAMED));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gramine::fsview::tests::index;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn most_specific_wins() {
        let r = DirRules::new(&s(&["/", "/data/ro"]), &s(&["/data"]), &s(&["/tmp"]));
        assert_eq!(r.classify("/etc/passwd"), Some(DirKind::ReadOnly));
        assert_eq!(r.classify("/data/x"), Some(DirKind::ReadWrite));
        assert_eq!(r.classify("/data/ro/x"), Some(DirKind::ReadOnly));
        assert_eq!(r.classify("/tmp/a"), Some(DirKind::Encrypted));
        assert_eq!(r.classify("/tmpx"), Some(DirKind::ReadOnly));
        assert_eq!(r.owner("/data/ro/x"), Some("/data/ro"));
        let r = DirRules::new(&s(&["/app"]), &[], &[]);
        assert_eq!(r.classify("/etc/passwd"), None);
    }

    #[test]
    fn trusted_files_follow_links_and_skip_claimed_paths() {
        let idx = index(&[
            ("/", "dir"),
            ("/usr/lib/libz.so.1.3", "z"),
            ("/usr/lib/libz.so.1", "->libz.so.1.3"),
            ("/lib", "->usr/lib"),
            ("/etc/hosts", "h"),
            ("/etc/conf", "c"),
            ("/tmp/junk", "j"),
            ("/proc/x", "p"),
            ("/opt/kiln/runtime/libsysdb.so", "k"),
            ("/dangling", "->/nowhere"),
            ("/loop", "->/"),
            ("/usr/lib/self", "->."),
            ("/to-hosts", "->/etc/hosts"),
        ]);
        let rules = DirRules::new(&s(&["/"]), &s(&["/etc/hosts"]), &s(&["/tmp"]));
        let t = collect(&idx, &rules, &s(&["/tmp"]), &s(&["/proc", "/opt/kiln"]));
        let paths: Vec<_> = t.files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/etc/conf",
                "/lib/libz.so.1",
                "/lib/libz.so.1.3",
                "/usr/lib/libz.so.1",
                "/usr/lib/libz.so.1.3",
            ]
        );
        assert_eq!(t.files["/lib/libz.so.1"], [b'z'; 32]);
        assert_eq!(t.hidden_by_encrypted["/tmp"], s(&["/tmp/junk"]));
        assert!(t.skipped_links.contains(&"/loop".to_string()));
        assert!(t.skipped_links.contains(&"/usr/lib/self".to_string()));
    }

    #[test]
    fn many_links_to_a_big_dir_are_capped() {
        let mut entries: Vec<(String, String)> = Vec::new();
        for i in 0..2000 {
            entries.push((format!("/big/f{i:04}"), "f".into()));
        }
        for i in 0..60 {
            entries.push((format!("/links/l{i:02}"), "->/big".into()));
        }
        let refs: Vec<(&str, &str)> = entries
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let idx = index(&refs);
        let rules = DirRules::new(&s(&["/"]), &[], &[]);
        let t = collect(&idx, &rules, &[], &[]);
        // 2000 real files + 50 links' worth of aliases (100,000), the other 10 links skipped.
        assert_eq!(t.files.len(), 2000 + MAX_LINK_ALIASES);
        assert_eq!(t.skipped_links.len(), 10);
    }

    #[test]
    fn names_are_capped() {
        let many: Vec<String> = (0..12).map(|i| format!("/f{i}")).collect();
        let n = name_some(&many);
        assert!(n.ends_with("/f9 and 2 more"), "{n}");
    }
}

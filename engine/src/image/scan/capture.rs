//! Which regular files a layer scan keeps the contents of: by default the few small files
//! the enclave spec reads ([`CAPTURED_PATHS`]); readers of converted images (verify,
//! inspect) ask for their own paths, or for every path ending in a suffix (a Gramine
//! install at an unknown place).

use std::collections::BTreeSet;

use super::summary::{CAPTURED_DIRS, CAPTURED_PATHS, CAPTURE_LIMIT};

/// The set of paths whose contents a scan captures, and the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSet {
    exact: BTreeSet<String>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    limit: u64,
}

impl Default for CaptureSet {
    fn default() -> Self {
        Self::standard()
    }
}

impl CaptureSet {
    /// The default: [`CAPTURED_PATHS`] and the files below [`CAPTURED_DIRS`], up to
    /// [`CAPTURE_LIMIT`] bytes.
    pub fn standard() -> Self {
        CAPTURED_DIRS.iter().fold(
            Self::empty(CAPTURE_LIMIT).paths(CAPTURED_PATHS.iter().copied()),
            |set, dir| set.prefix(*dir),
        )
    }

    /// Captures nothing yet; files larger than `limit` bytes are never captured.
    pub fn empty(limit: u64) -> Self {
        CaptureSet {
            exact: BTreeSet::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            limit,
        }
    }

    /// Adds absolute, normalised paths (e.g. `/opt/kiln/sgx1/app.sig`).
    pub fn paths<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.exact.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Adds a path prefix ending in `/` (e.g. `/etc/ld.so.conf.d/`): every file below it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Adds a path suffix (e.g. `/gramine/sgx/libpal.so`): every path ending in it.
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffixes.push(suffix.into());
        self
    }

    /// The size limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether a regular file at `path` of `size` bytes is captured.
    pub fn wants(&self, path: &str, size: u64) -> bool {
        size <= self.limit
            && (self.exact.contains(path)
                || self.prefixes.iter().any(|p| path.starts_with(p))
                || self.suffixes.iter().any(|s| path.ends_with(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_custom_sets() {
        let s = CaptureSet::standard();
        assert!(s.wants("/etc/passwd", 10));
        assert!(!s.wants("/etc/passwd", CAPTURE_LIMIT + 1));
        assert!(!s.wants("/etc/shadow", 10));
        assert!(s.wants("/etc/ld.so.conf", 10));
        assert!(s.wants("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", 10));
        assert!(!s.wants("/etc/ld.so.conf.dx", 10));
        let c = CaptureSet::empty(100)
            .paths(["/a/b"])
            .suffix("/gramine/sgx/libpal.so");
        assert!(c.wants("/a/b", 100));
        assert!(!c.wants("/a/b", 101));
        assert!(c.wants("/x/gramine/sgx/libpal.so", 1));
        assert!(!c.wants("/x/gramine/sgx/libpal.so.1", 1));
        assert_eq!(c.limit(), 100);
    }
}

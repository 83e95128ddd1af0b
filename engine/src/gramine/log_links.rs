//! Log files linked to the container's stdout or stderr (`/var/log/nginx/access.log ->
//! /dev/stdout`, as the official nginx and httpd images do).
//!
//! Under Gramine such a link cannot work by itself. The chroot filesystem does not see the
//! image's symlinks: the host follows them when it looks the path up, so the app's open
//! reaches the container's stdout, which is a pipe, and Gramine v1.9 refuses host FIFOs
//! (`chroot_lookup` in libos/src/fs/chroot/fs.c: "trying to access '...' which is a
//! host-level FIFO (named pipe)", EACCES). Gramine's own `/dev/stdout` (its devfs link to
//! `/proc/self/fd/1`) is never reached, and no manifest option makes a chroot path an
//! alias for it.
//!
//! What kiln does instead: a character device is accepted (as `PAL_TYPE_DEV`), so the
//! launcher, outside the enclave, opens a pseudo-terminal per stream, puts it in raw mode,
//! hands its slave to Gramine's loader as a fixed descriptor
//! ([`kiln_launcher::config::LOG_RELAYS`]) and copies what arrives on the master to its own
//! stdout or stderr. The kiln layer holds `/opt/kiln/logs/stdout -> /proc/self/fd/61` (and
//! `stderr -> .../62`) and re-points each log link of the image at it
//! (`/var/log/nginx/access.log -> /opt/kiln/logs/stdout`), and the manifests list the
//! link's path as an allowed file. Gramine checks the path the app opens, while the host
//! follows the links to the pseudo-terminal, a character device it accepts. (A file mount
//! over the link cannot work: Gramine looks the mount point up on the host first and meets
//! the pipe there, "Looking up mountpoint ... failed: Permission denied".) The app's writes
//! reach the container's stdout/stderr through the relay as they did through the link;
//! outside Gramine the same links lead to the same relay. The lines are untrusted output,
//! exactly like the app's stdout.

use std::collections::BTreeMap;

use super::fsview::descendants;
use super::paths::is_within;
use crate::image::file_index::{FileIndex, FileKind};

/// Which stream a log link names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl Stream {
    /// The host path (in the kiln layer) that leads to the launcher's relay for it.
    pub fn relay_path(self) -> &'static str {
        let (stdout, stderr) = (
            kiln_launcher::config::LOG_RELAYS[0].0,
            kiln_launcher::config::LOG_RELAYS[1].0,
        );
        match self {
            Stream::Stdout => stdout,
            Stream::Stderr => stderr,
        }
    }
}

/// The stream a symlink target names, if any.
fn stream_of(target: &str) -> Option<Stream> {
    match target.trim_end_matches('/') {
        "/dev/stdout" | "/proc/self/fd/1" | "/dev/fd/1" => Some(Stream::Stdout),
        "/dev/stderr" | "/proc/self/fd/2" | "/dev/fd/2" => Some(Stream::Stderr),
        _ => None,
    }
}

/// The image's links to stdout/stderr, by path, outside `excluded` (pseudo filesystems,
/// kiln's own directory, encrypted dirs: an encrypted mount hides the link anyway).
pub fn find(index: &FileIndex, excluded: &[String]) -> BTreeMap<String, Stream> {
    descendants(index, "/")
        .filter(|(p, _)| !excluded.iter().any(|x| is_within(p, x)))
        .filter_map(|(p, e)| match &e.kind {
            FileKind::Symlink { target } => stream_of(target).map(|s| (p.clone(), s)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::file_index::FileEntry;

    fn link(target: &str) -> FileEntry {
        FileEntry {
            kind: FileKind::Symlink {
                target: target.into(),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn links_to_the_standard_streams_are_found() {
        let mut index = FileIndex::default();
        for (p, t) in [
            ("/var/log/nginx/access.log", "/dev/stdout"),
            ("/var/log/nginx/error.log", "/dev/stderr"),
            ("/var/log/httpd/x.log", "/proc/self/fd/2"),
            ("/var/log/other.log", "/dev/null"),
            ("/tmp/x.log", "/dev/stdout"),
            ("/dev/stdout", "/proc/self/fd/1"),
        ] {
            index.entries.insert(p.into(), link(t));
        }
        let found = find(&index, &["/dev".into(), "/tmp".into()]);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![
                ("/var/log/httpd/x.log".to_string(), Stream::Stderr),
                ("/var/log/nginx/access.log".to_string(), Stream::Stdout),
                ("/var/log/nginx/error.log".to_string(), Stream::Stderr),
            ]
        );
        assert_eq!(Stream::Stdout.relay_path(), "/opt/kiln/logs/stdout");
        assert_eq!(Stream::Stderr.relay_path(), "/opt/kiln/logs/stderr");
    }
}

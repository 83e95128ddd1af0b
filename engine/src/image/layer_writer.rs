//! The deterministic layer writer: the same entries and mtime always give the same
//! `tar+gzip` bytes (so the same digest), whatever machine or target writes them.
//!
//! Fixed choices: entries sorted by path with missing parent directories added (0755);
//! ustar headers (a PAX header carrying only `path`/`linkpath` when a name does not fit);
//! every mtime the caller's (`SOURCE_DATE_EPOCH` or the input image's created time);
//! uid/gid 0 with empty user/group names; modes exactly as given; gzip with no file
//! name, mtime 0, OS byte 255 and level [`GZIP_LEVEL`]. The deflate bytes come from
//! miniz_oxide directly ([`gzip::GzipEncoder`], not through flate2, whose backend is
//! zlib-rs for the scan), pinned by Cargo.lock; a test pins one layer's digest on every
//! target, so an upgrade that changes the output is noticed.
//!
//! [`TarBuilder`] is the streaming writer underneath, usable on its own for large tars.

use std::io::{self, Write};

use crate::image::digest::{format_sha256, sha256_digest, Sha256Counter};
use crate::image::scan::path::{self, PathError};

pub mod gzip;

/// Media type of the layers written here.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The gzip level used for written layers (part of the determinism contract). Level 1:
/// on the kiln layer (manifests full of hex hashes) it is 4x faster than level 6 and
/// no bigger.
pub const GZIP_LEVEL: u32 = 1;

/// Largest mtime a ustar header can hold (11 octal digits).
pub const MAX_MTIME: u64 = 0o777_7777_7777;

const BLOCK: usize = 512;

/// Why a layer cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerWriteError {
    /// An entry path is unusable.
    #[error("layer entry: {0}")]
    Path(#[from] PathError),
    /// The root directory cannot be an entry.
    #[error("layer entry {path:?}: the root directory cannot be an entry")]
    Root {
        /// The path as given.
        path: String,
    },
    /// Two entries have the same (normalised) path.
    #[error("layer entry {path:?} appears twice")]
    Duplicate {
        /// The normalised path.
        path: String,
    },
    /// An entry lies under a path that is not a directory.
    #[error("layer entry {path:?}: parent {parent:?} is not a directory")]
    ParentNotDirectory {
        /// The entry.
        path: String,
        /// Its non-directory ancestor.
        parent: String,
    },
    /// A mode has bits beyond permissions, setuid, setgid and sticky.
    #[error("layer entry {path:?}: mode {mode:#o} has bits beyond 0o7777")]
    BadMode {
        /// The entry.
        path: String,
        /// The mode as given.
        mode: u32,
    },
    /// The mtime does not fit a ustar header.
    #[error("layer mtime {mtime} is larger than {MAX_MTIME}")]
    BadMtime {
        /// The mtime as given.
        mtime: u64,
    },
    /// File data written does not match the size announced in its header.
    #[error("tar entry {path:?}: {written} bytes written but {size} announced")]
    SizeMismatch {
        /// The entry.
        path: String,
        /// Bytes written.
        written: u64,
        /// Size in the header.
        size: u64,
    },
    /// Writing the output failed.
    #[error("writing layer: {0}")]
    Io(#[from] io::Error),
}

/// What a new layer entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEntryKind {
    /// A directory.
    Directory,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One entry of a layer to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Absolute path in the image (`/opt/kiln/app.manifest`); normalised on writing.
    pub path: String,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// What it is.
    pub kind: NewEntryKind,
}

impl NewEntry {
    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Self {
            path: path.into(),
            mode,
            kind: NewEntryKind::Directory,
        }
    }

    /// A regular file.
    pub fn file(path: impl Into<String>, mode: u32, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            mode,
            kind: NewEntryKind::File(contents.into()),
        }
    }

    /// A symbolic link (mode 0777).
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: 0o777,
            kind: NewEntryKind::Symlink(target.into()),
        }
    }
}

/// A written layer blob and its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// The `tar+gzip` blob.
    pub blob: Vec<u8>,
    /// Digest of the blob (`sha256:<hex>`), for the manifest's layer descriptor.
    pub digest: String,
    /// Digest of the uncompressed tar (`sha256:<hex>`), for the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// Writes a deterministic `tar+gzip` layer holding `entries`, every mtime `mtime`.
pub fn write_layer(entries: &[NewEntry], mtime: u64) -> Result<WrittenLayer, LayerWriteError> {
    let mut sorted: Vec<(String, &NewEntry)> = Vec::with_capacity(entries.len());
    for e in entries {
        let p = path::normalize(e.path.as_bytes())?;
        if p == "/" {
            return Err(LayerWriteError::Root {
                path: e.path.clone(),
            });
        }
        if e.mode > 0o7777 {
            return Err(LayerWriteError::BadMode {
                path: p,
                mode: e.mode,
            });
        }
        sorted.push((p, e));
    }
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(LayerWriteError::Duplicate {
            path: w[0].0.clone(),
        });
    }
    let is_dir = |p: &str| -> Option<bool> {
        sorted
            .binary_search_by(|(q, _)| q.as_str().cmp(p))
            .ok()
            .map(|i| sorted[i].1.kind == NewEntryKind::Directory)
    };
    // Every ancestor must be a directory: given ones are checked, missing ones added.
    let mut implicit: Vec<String> = Vec::new();
    for (p, _) in &sorted {
        let mut cur = path::parent(p);
        while let Some(dir) = cur.filter(|d| *d != "/") {
            match is_dir(dir) {
                Some(true) => break,
                Some(false) => {
                    return Err(LayerWriteError::ParentNotDirectory {
                        path: p.clone(),
                        parent: dir.to_string(),
                    })
                }
                None => implicit.push(dir.to_string()),
            }
            cur = path::parent(dir);
        }
    }
    implicit.sort();
    implicit.dedup();
    let implicit_entries: Vec<NewEntry> = implicit
        .iter()
        .map(|p| NewEntry::dir(p.clone(), 0o755))
        .collect();
    let mut all: Vec<(&str, &NewEntry)> = sorted.iter().map(|(p, e)| (p.as_str(), *e)).collect();
    all.extend(
        implicit
            .iter()
            .map(String::as_str)
            .zip(implicit_entries.iter()),
    );
    all.sort_by(|a, b| a.0.cmp(b.0));

    let gz = gzip::GzipEncoder::new(Vec::new(), GZIP_LEVEL);
    let mut tar = TarBuilder::new(HashingWriter::new(gz), mtime)?;
    for (p, e) in all {
        match &e.kind {
            NewEntryKind::Directory => tar.directory(p, e.mode)?,
            NewEntryKind::File(data) => tar.file(p, e.mode, data)?,
            NewEntryKind::Symlink(target) => tar.symlink(p, e.mode, target)?,
        }
    }
    let hashing = tar.finish()?;
    let (tar_sha, _) = hashing.hasher.finish();
    let blob = hashing.inner.finish()?;
    Ok(WrittenLayer {
        digest: sha256_digest(&blob),
        diff_id: format_sha256(&tar_sha),
        size: blob.len() as u64,
        blob,
    })
}

/// A writer that hashes what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W: Write> {
    /// The writer underneath.
    pub inner: W,
    /// SHA-256 and count of the bytes written.
    pub hasher: Sha256Counter,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256Counter::new(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct OpenFile {
    path: String,
    size: u64,
    written: u64,
}

/// A streaming, deterministic ustar writer (uid/gid 0, one fixed mtime). Paths are
/// absolute image paths; the caller orders entries.
pub struct TarBuilder<W: Write> {
    out: W,
    mtime: u64,
    open: Option<OpenFile>,
}

impl<W: Write> std::fmt::Debug for TarBuilder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarBuilder")
            .field("mtime", &self.mtime)
            .finish_non_exhaustive()
    }
}

impl<W: Write> TarBuilder<W> {
    /// A builder writing to `out`, every entry with mtime `mtime`.
    pub fn new(out: W, mtime: u64) -> Result<Self, LayerWriteError> {
        if mtime > MAX_MTIME {
            return Err(LayerWriteError::BadMtime { mtime });
        }
        Ok(Self {
            out,
            mtime,
            open: None,
        })
    }

    /// A directory entry.
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<(), LayerWriteError> {
        let name = format!("{}/", tar_name(path)?);
        self.header(&name, b'5', mode, 0, "")
    }

    /// A regular file with all its contents.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), LayerWriteError> {
        self.file_header(path, mode, data.len() as u64)?;
        self.file_data(data)?;
        self.end_file()
    }

    /// Starts a regular file of `size` bytes; follow with [`TarBuilder::file_data`] and
    /// [`TarBuilder::end_file`].
    pub fn file_header(&mut self, path: &str, mode: u32, size: u64) -> Result<(), LayerWriteError> {
        let name = tar_name(path)?;
        self.header(&name, b'0', mode, size, "")?;
        self.open = Some(OpenFile {
            path: path.to_string(),
            size,
            written: 0,
        });
        Ok(())
    }

    /// Writes the next bytes of the open file.
    pub fn file_data(&mut self, data: &[u8]) -> Result<(), LayerWriteError> {
        let Some(open) = self.open.as_mut() else {
            return Err(LayerWriteError::SizeMismatch {
                path: String::new(),
                written: data.len() as u64,
                size: 0,
            });
        };
        open.written += data.len() as u64;
        if open.written > open.size {
            return Err(LayerWriteError::SizeMismatch {
                path: open.path.clone(),
                written: open.written,
                size: open.size,
            });
        }
        self.out.write_all(data)?;
        Ok(())
    }

    /// Ends the open file (checks its size, writes the padding).
    pub fn end_file(&mut self) -> Result<(), LayerWriteError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        if open.written != open.size {
            return Err(LayerWriteError::SizeMismatch {
                path: open.path,
                written: open.written,
                size: open.size,
            });
        }
        let pad = (BLOCK - (open.size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])?;
        Ok(())
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, mode: u32, target: &str) -> Result<(), LayerWriteError> {
        let name = tar_name(path)?;
        self.header(&name, b'2', mode, 0, target)
    }

    /// Writes the end-of-archive marker and returns the output.
    pub fn finish(mut self) -> Result<W, LayerWriteError> {
        self.end_file()?;
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        name: &str,
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &str,
    ) -> Result<(), LayerWriteError> {
        self.end_file()?;
        let split = split_ustar(name);
        if split.is_none() || link.len() > 100 {
            let mut records = Vec::new();
            if split.is_none() {
                records.extend(pax_record("path", name));
            }
            if link.len() > 100 {
                records.extend(pax_record("linkpath", link));
            }
            let pax_name: String = format!("PaxHeaders/{name}").chars().take(100).collect();
            let pax_name = truncate_to_boundary(&pax_name, 100);
            let h = self.raw_header(pax_name, "", b'x', 0o644, records.len() as u64, "");
            self.out.write_all(&h)?;
            self.out.write_all(&records)?;
            let pad = (BLOCK - records.len() % BLOCK) % BLOCK;
            self.out.write_all(&[0u8; BLOCK][..pad])?;
        }
        let (prefix, short) = split.unwrap_or(("", truncate_to_boundary(name, 100)));
        let link = truncate_to_boundary(link, 100);
        let h = self.raw_header(short, prefix, typeflag, mode, size, link);
        self.out.write_all(&h)?;
        Ok(())
    }

    fn raw_header(
        &self,
        name: &str,
        prefix: &str,
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &str,
    ) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        put(&mut h[0..100], name.as_bytes());
        put(
            &mut h[100..108],
            format!("{:07o}\0", mode & 0o7777).as_bytes(),
        );
        put(&mut h[108..116], b"0000000\0");
        put(&mut h[116..124], b"0000000\0");
        let size_field = if size <= 0o777_7777_7777 {
            format!("{size:011o}\0").into_bytes()
        } else {
            // GNU base-256 for sizes of 8 GiB and more.
            let mut b = vec![0u8; 12];
            b[0] = 0x80;
            b[4..].copy_from_slice(&size.to_be_bytes());
            b
        };
        put(&mut h[124..136], &size_field);
        put(
            &mut h[136..148],
            format!("{:011o}\0", self.mtime).as_bytes(),
        );
        h[156] = typeflag;
        put(&mut h[157..257], link.as_bytes());
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        put(&mut h[329..337], b"0000000\0");
        put(&mut h[337..345], b"0000000\0");
        put(&mut h[345..500], prefix.as_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        h
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// The tar name of an absolute image path (`/a/b` → `a/b`).
fn tar_name(p: &str) -> Result<String, LayerWriteError> {
    let norm = path::normalize(p.as_bytes())?;
    match norm.strip_prefix('/') {
        Some(rest) if !rest.is_empty() => Ok(rest.to_string()),
        _ => Err(LayerWriteError::Root {
            path: p.to_string(),
        }),
    }
}

/// Splits a name into ustar (prefix, name) if it fits (name ≤ 100, prefix ≤ 155).
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    // Split at a '/' so that the prefix is at most 155 bytes and the rest at most 100.
    let bytes = name.as_bytes();
    (0..bytes.len())
        .rev()
        .filter(|&i| bytes[i] == b'/')
        .find(|&i| i <= 155 && bytes.len() - i - 1 <= 100 && i + 1 < bytes.len())
        .map(|i| (&name[..i], &name[i + 1..]))
}

fn truncate_to_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One PAX record, `"<len> <key>=<value>\n"` where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::scan::{scan_blob, EntryKind};

    fn sample() -> Vec<NewEntry> {
        let long = format!("/opt/{}/{}", "d".repeat(120), "f".repeat(90));
        let very_long = format!("/opt/{}", "x".repeat(300));
        vec![
            NewEntry::file("/opt/kiln/app.manifest", 0o644, b"manifest".to_vec()),
            NewEntry::dir("/opt", 0o755),
            NewEntry::symlink("/opt/kiln/current", "app.manifest"),
            NewEntry::file("/opt/kiln/launcher", 0o4755, vec![7u8; 1000]),
            NewEntry::file(long, 0o600, b"long".to_vec()),
            NewEntry::file(very_long, 0o600, Vec::new()),
            NewEntry::symlink("/opt/link", "t".repeat(150)),
        ]
    }

    #[test]
    fn same_input_same_bytes_and_scanner_reads_it_back() {
        let a = write_layer(&sample(), 1_700_000_000).unwrap();
        let mut reversed = sample();
        reversed.reverse();
        let b = write_layer(&reversed, 1_700_000_000).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.digest, sha256_digest(&a.blob));
        let c = write_layer(&sample(), 1).unwrap();
        assert_ne!(a.digest, c.digest);

        let s = scan_blob(&a.digest, LAYER_MEDIA_TYPE, &a.blob).unwrap();
        assert_eq!(s.diff_id, Some(a.diff_id.clone()));
        let paths: Vec<_> = s.entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(paths.contains(&"/opt/kiln"), "implicit parent: {paths:?}");
        let launcher = s
            .entries
            .iter()
            .find(|e| e.path == "/opt/kiln/launcher")
            .unwrap();
        assert_eq!((launcher.mode, launcher.uid, launcher.gid), (0o4755, 0, 0));
        assert!(s.entries.iter().any(|e| e.path.len() > 300));
        assert!(s.entries.iter().any(|e| e.kind
            == EntryKind::Symlink {
                target: "t".repeat(150)
            }));
    }

    #[test]
    fn refuses_bad_input() {
        let dup = [NewEntry::dir("/a", 0o755), NewEntry::dir("a/", 0o700)];
        assert!(matches!(
            write_layer(&dup, 0),
            Err(LayerWriteError::Duplicate { .. })
        ));
        let under_file = [
            NewEntry::file("/a", 0o644, b"x".to_vec()),
            NewEntry::dir("/a/b", 0o755),
        ];
        assert!(matches!(
            write_layer(&under_file, 0),
            Err(LayerWriteError::ParentNotDirectory { .. })
        ));
        assert!(write_layer(&[NewEntry::dir("/", 0o755)], 0).is_err());
        assert!(write_layer(&[NewEntry::dir("/../x", 0o755)], 0).is_err());
        assert!(write_layer(&[NewEntry::dir("/x", 0o10755)], 0).is_err());
        assert!(write_layer(&[], MAX_MTIME + 1).is_err());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1, 5, 90, 95, 1000] {
            let r = pax_record("path", &"a".repeat(n));
            let text = String::from_utf8(r.clone()).unwrap();
            let len: usize = text.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(len, r.len());
        }
    }
}

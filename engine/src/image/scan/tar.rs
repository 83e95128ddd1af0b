//! A push-driven tar reader: the caller hands it the uncompressed tar stream in chunks of
//! any size; it parses ustar, GNU (`L`/`K` long names, base-256 numbers) and PAX (`x`,
//! `g`) headers, hashes regular files' contents as they pass and records one
//! [`LayerEntry`] per entry. Memory stays bounded: one header, extended headers up to
//! [`MAX_EXTENDED_HEADER`] and captured files up to [`CAPTURE_LIMIT`](super::summary::CAPTURE_LIMIT).

use std::collections::BTreeMap;

use super::capture::CaptureSet;
use super::libc_probe::{is_libc_name, LibcVersionProbe};
use super::path::{self, PathError};
use super::summary::{EntryKind, LayerEntry};
use crate::image::digest::Sha256Counter;
use crate::image::limits::{ImageLimits, LimitExceeded};

/// Largest GNU long name/link or PAX extended header accepted, in bytes.
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

const BLOCK: usize = 512;

/// What is wrong with a tar stream. Offsets count bytes of the uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    /// A header's checksum does not match its bytes.
    #[error(
        "tar header at offset {offset}: checksum mismatch (stored {stored}, computed {computed})"
    )]
    BadChecksum {
        /// Offset of the header.
        offset: u64,
        /// The checksum stored in the header.
        stored: u64,
        /// The checksum of the header's bytes.
        computed: u64,
    },
    /// A numeric header field is malformed or out of range.
    #[error("tar header at offset {offset}: field `{field}` is not a valid number")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// Offset of the header.
        offset: u64,
    },
    /// An entry name is unusable.
    #[error("tar header at offset {offset}: {source}")]
    Path {
        /// The problem with the name.
        source: PathError,
        /// Offset of the header.
        offset: u64,
    },
    /// A symlink target is not UTF-8.
    #[error("tar entry {path:?} (offset {offset}): link target is not valid UTF-8")]
    LinkNotUtf8 {
        /// The entry.
        path: String,
        /// Offset of the header.
        offset: u64,
    },
    /// The entry type is not one kiln can index.
    #[error("tar entry {path:?} (offset {offset}): unsupported entry type {typeflag:?}")]
    UnsupportedType {
        /// The entry.
        path: String,
        /// The type flag byte.
        typeflag: char,
        /// Offset of the header.
        offset: u64,
    },
    /// A GNU long name/link or PAX header is larger than [`MAX_EXTENDED_HEADER`].
    #[error("tar header at offset {offset}: extended header of {size} bytes is too large")]
    ExtendedHeaderTooLarge {
        /// Its declared size.
        size: u64,
        /// Offset of the header.
        offset: u64,
    },
    /// A PAX extended header is malformed.
    #[error("tar PAX header at offset {offset}: {reason}")]
    BadPax {
        /// What is wrong.
        reason: &'static str,
        /// Offset of the header.
        offset: u64,
    },
    /// A `.wh.` whiteout with an empty name.
    #[error("tar entry {path:?} (offset {offset}): malformed whiteout")]
    BadWhiteout {
        /// The entry.
        path: String,
        /// Offset of the header.
        offset: u64,
    },
    /// A limit of [`ImageLimits`] was hit (path length or depth, entries, uncompressed
    /// bytes, captured bytes).
    #[error("tar stream at offset {offset}: {source}")]
    Limit {
        /// Which limit, and what exceeded it.
        source: LimitExceeded,
        /// Offset of the header (or of the stream) where it was hit.
        offset: u64,
    },
    /// The stream ended inside a header or an entry's data.
    #[error("tar stream truncated at offset {offset} (inside {inside})")]
    Truncated {
        /// Bytes received.
        offset: u64,
        /// What was being read.
        inside: &'static str,
    },
}

/// The result of a tar walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarListing {
    /// The entries, in tar order.
    pub entries: Vec<LayerEntry>,
    /// Captured small files (see [`CAPTURED_PATHS`](super::summary::CAPTURED_PATHS)).
    pub captured: BTreeMap<String, Vec<u8>>,
    /// glibc releases found in C library files, by the file's hex SHA-256
    /// ([`super::libc_probe`]).
    pub libc_versions: BTreeMap<String, String>,
    /// SHA-256 of the whole tar stream (the `diff_id`), when the walker was asked for it
    /// ([`TarWalker::hashing_stream`]).
    pub sha256: Option<[u8; 32]>,
    /// Length of the tar stream.
    pub size: u64,
}

/// Extended attributes from PAX headers that kiln uses.
#[derive(Debug, Clone, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    sparse: bool,
}

#[derive(Debug, Clone, Copy)]
enum Meta {
    LongName,
    LongLink,
    Pax,
    GlobalPax,
}

// One `Sink` lives at a time, boxed inside `State::Data`: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Sink {
    File {
        entry: LayerEntry,
        hasher: Sha256Counter,
        capture: Option<Vec<u8>>,
        probe: Option<LibcVersionProbe>,
    },
    Meta {
        meta: Meta,
        buf: Vec<u8>,
        offset: u64,
    },
    Discard,
}

enum State {
    Header,
    Data {
        remaining: u64,
        padding: u64,
        sink: Box<Sink>,
    },
    Skip {
        remaining: u64,
    },
    End,
}

/// The push-driven tar walker.
pub struct TarWalker {
    state: State,
    header: [u8; BLOCK],
    header_len: usize,
    offset: u64,
    zero_blocks: u8,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Pax,
    global: Pax,
    stream: Option<Sha256Counter>,
    entries: Vec<LayerEntry>,
    captured: BTreeMap<String, Vec<u8>>,
    libc_versions: BTreeMap<String, String>,
    /// Bytes reserved for captured contents so far (counted when a capture starts).
    captured_bytes: u64,
    capture: CaptureSet,
    limits: ImageLimits,
}

impl Default for TarWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TarWalker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWalker")
            .field("offset", &self.offset)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl TarWalker {
    /// A walker at the start of a tar stream.
    pub fn new() -> Self {
        Self::with_capture(CaptureSet::standard())
    }

    /// A walker that captures the files of `capture` (instead of [`CAPTURED_PATHS`](super::summary::CAPTURED_PATHS)).
    pub fn with_capture(capture: CaptureSet) -> Self {
        Self {
            state: State::Header,
            header: [0; BLOCK],
            header_len: 0,
            offset: 0,
            zero_blocks: 0,
            long_name: None,
            long_link: None,
            pax: Pax::default(),
            global: Pax::default(),
            stream: None,
            entries: Vec::new(),
            captured: BTreeMap::new(),
            libc_versions: BTreeMap::new(),
            captured_bytes: 0,
            capture,
            limits: ImageLimits::default(),
        }
    }

    /// Enforces `limits` (path bytes and depth, entries per layer, uncompressed bytes per
    /// layer, captured bytes) instead of the defaults.
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Also hashes the whole stream ([`TarListing::sha256`], the `diff_id`).
    pub fn hashing_stream(mut self) -> Self {
        self.stream = Some(Sha256Counter::new());
        self
    }

    /// Bytes of tar received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds the next bytes of the tar stream.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), TarError> {
        let max = self.limits.layer_bytes;
        let total = self.offset.saturating_add(data.len() as u64);
        if total > max {
            return Err(TarError::Limit {
                source: LimitExceeded::new(
                    "layer-bytes",
                    max,
                    format!("more than {max} uncompressed bytes"),
                ),
                offset: self.offset,
            });
        }
        if let Some(stream) = self.stream.as_mut() {
            stream.update(data);
        }
        while !data.is_empty() {
            let taken = match &mut self.state {
                State::Header => {
                    let n = (BLOCK - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                    self.header_len += n;
                    if self.header_len == BLOCK {
                        self.header_len = 0;
                        let header_offset = self.offset + n as u64 - BLOCK as u64;
                        self.on_header(header_offset)?;
                    }
                    n
                }
                State::Data {
                    remaining, sink, ..
                } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    let piece = &data[..n];
                    match sink.as_mut() {
                        Sink::File {
                            hasher,
                            capture,
                            probe,
                            ..
                        } => {
                            hasher.update(piece);
                            if let Some(c) = capture {
                                c.extend_from_slice(piece);
                            }
                            if let Some(p) = probe {
                                p.update(piece);
                            }
                        }
                        Sink::Meta { buf, .. } => buf.extend_from_slice(piece),
                        Sink::Discard => {}
                    }
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.end_data()?;
                    }
                    n
                }
                State::Skip { remaining } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                    n
                }
                // Anything after the end-of-archive marker is ignored.
                State::End => data.len(),
            };
            self.offset += taken as u64;
            data = &data[taken..];
        }
        Ok(())
    }

    /// Ends the stream: checks it did not stop inside an entry and returns the listing.
    /// A stream without the end-of-archive zero blocks is accepted if it stops between
    /// entries.
    pub fn finish(self) -> Result<TarListing, TarError> {
        let inside = match &self.state {
            State::End => None,
            State::Header if self.header_len == 0 => None,
            State::Header => Some("a header"),
            State::Data { .. } => Some("an entry's data"),
            State::Skip { .. } => Some("padding"),
        };
        if let Some(inside) = inside {
            return Err(TarError::Truncated {
                offset: self.offset,
                inside,
            });
        }
        Ok(TarListing {
            entries: self.entries,
            captured: self.captured,
            libc_versions: self.libc_versions,
            sha256: self.stream.map(|s| s.finish().0),
            size: self.offset,
        })
    }

    fn on_header(&mut self, offset: u64) -> Result<(), TarError> {
        let h = self.header;
        if h.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks >= 2 {
                self.state = State::End;
            }
            return Ok(());
        }
        self.zero_blocks = 0;
        verify_checksum(&h, offset)?;

        let typeflag = h[156];
        let header_size = parse_number(&h[124..136], "size", offset)?;
        let size = match typeflag {
            b'x' | b'g' | b'L' | b'K' => header_size,
            _ => self.pax.size.unwrap_or(header_size),
        };
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;

        if let Some(meta) = match typeflag {
            b'L' => Some(Meta::LongName),
            b'K' => Some(Meta::LongLink),
            b'x' => Some(Meta::Pax),
            b'g' => Some(Meta::GlobalPax),
            _ => None,
        } {
            if size > MAX_EXTENDED_HEADER {
                return Err(TarError::ExtendedHeaderTooLarge { size, offset });
            }
            let sink = Sink::Meta {
                meta,
                buf: Vec::with_capacity(size as usize),
                offset,
            };
            self.start_data(size, padding, sink)?;
            return Ok(());
        }

        // An ordinary entry: gather its name and fields, then reset the pending
        // extended headers.
        let pax = std::mem::take(&mut self.pax);
        let long_name = self.long_name.take();
        let long_link = self.long_link.take();
        let raw_name = match (pax.path, long_name) {
            (Some(p), _) => p,
            (None, Some(l)) => l,
            (None, None) => ustar_name(&h),
        };
        let path =
            path::normalize(&raw_name).map_err(|source| TarError::Path { source, offset })?;
        self.check_path(&path, offset)?;
        let limit = |source| TarError::Limit { source, offset };
        ImageLimits::check(
            "layer-entries",
            self.limits.layer_entries,
            self.entries.len() as u64 + 1,
            || format!("more than {} entries", self.limits.layer_entries),
        )
        .map_err(limit)?;
        let raw_link = match (pax.linkpath, long_link) {
            (Some(p), _) => p,
            (None, Some(l)) => l,
            (None, None) => cstr(&h[157..257]).to_vec(),
        };
        let mode = (parse_number(&h[100..108], "mode", offset)? & 0o7777) as u32;
        let uid = match pax.uid.or(self.global.uid) {
            Some(u) => u,
            None => to_u32(parse_number(&h[108..116], "uid", offset)?, "uid", offset)?,
        };
        let gid = match pax.gid.or(self.global.gid) {
            Some(g) => g,
            None => to_u32(parse_number(&h[116..124], "gid", offset)?, "gid", offset)?,
        };
        if pax.sparse || typeflag == b'S' {
            return Err(TarError::UnsupportedType {
                path,
                typeflag: 'S',
                offset,
            });
        }
        let device = |field_major: &'static str| -> Result<(u32, u32), TarError> {
            let major = to_u32(
                parse_number(&h[329..337], field_major, offset)?,
                field_major,
                offset,
            )?;
            let minor = to_u32(
                parse_number(&h[337..345], "devminor", offset)?,
                "devminor",
                offset,
            )?;
            Ok((major, minor))
        };
        let is_dir_name = raw_name.last() == Some(&b'/');
        let kind = match typeflag {
            b'0' | 0 | b'7' if is_dir_name => EntryKind::Directory,
            b'0' | 0 | b'7' => EntryKind::Regular {
                size,
                sha256: [0; 32],
            },
            b'1' => {
                let target = path::normalize(&raw_link)
                    .map_err(|source| TarError::Path { source, offset })?;
                self.check_path(&target, offset)?;
                EntryKind::Hardlink { target }
            }
            b'2' => {
                ImageLimits::check(
                    "path-bytes",
                    self.limits.path_bytes,
                    raw_link.len() as u64,
                    || format!("link target of {} bytes ({})", raw_link.len(), short(&path)),
                )
                .map_err(limit)?;
                EntryKind::Symlink {
                    target: String::from_utf8(raw_link).map_err(|_| TarError::LinkNotUtf8 {
                        path: path.clone(),
                        offset,
                    })?,
                }
            }
            b'3' => {
                let (major, minor) = device("devmajor")?;
                EntryKind::CharDevice { major, minor }
            }
            b'4' => {
                let (major, minor) = device("devmajor")?;
                EntryKind::BlockDevice { major, minor }
            }
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            other => {
                return Err(TarError::UnsupportedType {
                    path,
                    typeflag: other as char,
                    offset,
                })
            }
        };

        // Like Go's archive/tar (which unpacks most images), links, devices, fifos and
        // directories carry no data whatever their size field says.
        let (size, padding) = if (b'1'..=b'6').contains(&typeflag) {
            (0, 0)
        } else {
            (size, padding)
        };

        // OCI whiteouts.
        let name = path::file_name(&path);
        if let Some(rest) = name.strip_prefix(".wh.") {
            let parent = path::parent(&path).unwrap_or("/").to_string();
            let whiteout = if rest == ".wh..opq" {
                Some(LayerEntry {
                    path: parent,
                    kind: EntryKind::Opaque,
                    mode,
                    uid,
                    gid,
                })
            } else if rest.starts_with(".wh.") {
                // Reserved for aufs metadata (`.wh..wh.plnk`, ...): not part of the image.
                None
            } else if rest.is_empty() {
                return Err(TarError::BadWhiteout { path, offset });
            } else {
                Some(LayerEntry {
                    path: path::join(&parent, rest),
                    kind: EntryKind::Whiteout,
                    mode,
                    uid,
                    gid,
                })
            };
            self.entries.extend(whiteout);
            return self.start_data(size, padding, Sink::Discard);
        }

        let entry = LayerEntry {
            path,
            kind,
            mode,
            uid,
            gid,
        };
        if matches!(entry.kind, EntryKind::Regular { .. }) {
            let capture = if self.capture.wants(&entry.path, size) {
                self.captured_bytes = self.captured_bytes.saturating_add(size);
                ImageLimits::check(
                    "capture-bytes",
                    self.limits.capture_bytes,
                    self.captured_bytes,
                    || format!("{} bytes of captured files", self.captured_bytes),
                )
                .map_err(limit)?;
                Some(Vec::with_capacity(size as usize))
            } else {
                None
            };
            let probe = is_libc_name(path::file_name(&entry.path)).then(LibcVersionProbe::new);
            self.start_data(
                size,
                padding,
                Sink::File {
                    entry,
                    hasher: Sha256Counter::new(),
                    capture,
                    probe,
                },
            )
        } else {
            self.entries.push(entry);
            self.start_data(size, padding, Sink::Discard)
        }
    }

    /// Refuses a normalised path longer than `path-bytes` or deeper than `path-depth`.
    fn check_path(&self, path: &str, offset: u64) -> Result<(), TarError> {
        let limit = |source| TarError::Limit { source, offset };
        let l = &self.limits;
        ImageLimits::check("path-bytes", l.path_bytes, path.len() as u64, || {
            format!("path of {} bytes ({})", path.len(), short(path))
        })
        .map_err(limit)?;
        let depth = path.bytes().filter(|&b| b == b'/').count() as u64;
        ImageLimits::check("path-depth", l.path_depth, depth, || {
            format!("path of {depth} components ({})", short(path))
        })
        .map_err(limit)
    }

    fn start_data(&mut self, size: u64, padding: u64, sink: Sink) -> Result<(), TarError> {
        self.state = State::Data {
            remaining: size,
            padding,
            sink: Box::new(sink),
        };
        if size == 0 {
            self.end_data()?;
        }
        Ok(())
    }

    fn end_data(&mut self) -> Result<(), TarError> {
        let State::Data { padding, sink, .. } = std::mem::replace(&mut self.state, State::Header)
        else {
            return Ok(());
        };
        if padding > 0 {
            self.state = State::Skip { remaining: padding };
        }
        match *sink {
            Sink::File {
                mut entry,
                hasher,
                capture,
                probe,
            } => {
                let (sha256, size) = hasher.finish();
                if let Some(version) = probe.and_then(|p| p.finish()) {
                    self.libc_versions.insert(hex::encode(sha256), version);
                }
                entry.kind = EntryKind::Regular { size, sha256 };
                if let Some(bytes) = capture {
                    self.captured.insert(entry.path.clone(), bytes);
                } else {
                    // A later, too large copy of a captured path hides an earlier one.
                    self.captured.remove(&entry.path);
                }
                self.entries.push(entry);
            }
            Sink::Meta { meta, buf, offset } => match meta {
                Meta::LongName => self.long_name = Some(cstr(&buf).to_vec()),
                Meta::LongLink => self.long_link = Some(cstr(&buf).to_vec()),
                Meta::Pax => parse_pax(&buf, &mut self.pax, offset)?,
                Meta::GlobalPax => {
                    let mut global = Pax::default();
                    parse_pax(&buf, &mut global, offset)?;
                    self.global.uid = global.uid.or(self.global.uid);
                    self.global.gid = global.gid.or(self.global.gid);
                }
            },
            Sink::Discard => {}
        }
        Ok(())
    }
}

/// The first 64 bytes of a path, for messages about huge ones.
fn short(path: &str) -> String {
    if path.len() <= 64 {
        return format!("{path:?}");
    }
    let mut end = 64;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &path[..end])
}

/// The bytes up to the first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// The entry name of a ustar/GNU header: POSIX ustar joins `prefix/name`.
fn ustar_name(h: &[u8; BLOCK]) -> Vec<u8> {
    let name = cstr(&h[0..100]);
    let posix = &h[257..263] == b"ustar\0";
    let prefix = cstr(&h[345..500]);
    if posix && !prefix.is_empty() {
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        full
    } else {
        name.to_vec()
    }
}

fn verify_checksum(h: &[u8; BLOCK], offset: u64) -> Result<(), TarError> {
    let stored = parse_number(&h[148..156], "chksum", offset)?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).ok() == Some(signed) {
        Ok(())
    } else {
        Err(TarError::BadChecksum {
            offset,
            stored,
            computed: unsigned,
        })
    }
}

/// Parses an octal field (NUL/space padded) or a GNU base-256 field (high bit set).
fn parse_number(field: &[u8], name: &'static str, offset: u64) -> Result<u64, TarError> {
    let bad = || TarError::BadNumber {
        field: name,
        offset,
    };
    let Some(&first) = field.first() else {
        return Err(bad());
    };
    if first & 0x80 != 0 {
        // Base-256, big-endian, two's complement; negative values are refused.
        if first & 0x40 != 0 {
            return Err(bad());
        }
        let mut value: u64 = u64::from(first & 0x3f);
        for &b in &field[1..] {
            if value > (u64::MAX >> 8) {
                return Err(bad());
            }
            value = (value << 8) | u64::from(b);
        }
        return Ok(value);
    }
    let text = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ');
    let mut value: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad());
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(value)
}

fn to_u32(v: u64, field: &'static str, offset: u64) -> Result<u32, TarError> {
    u32::try_from(v).map_err(|_| TarError::BadNumber { field, offset })
}

/// Parses PAX records (`"<len> <key>=<value>\n"`) into `pax`.
fn parse_pax(mut buf: &[u8], pax: &mut Pax, offset: u64) -> Result<(), TarError> {
    let bad = |reason| TarError::BadPax { reason, offset };
    while !buf.is_empty() {
        if buf.iter().all(|&b| b == 0) {
            break;
        }
        let space = buf
            .iter()
            .position(|&b| b == b' ')
            .ok_or(bad("record without a length"))?;
        let len: usize = std::str::from_utf8(&buf[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad("record length is not a number"))?;
        if len <= space + 1 || len > buf.len() {
            return Err(bad("record length out of range"));
        }
        let record = &buf[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or(bad("record does not end with a newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(bad("record without `=`"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let number = |what| -> Result<Option<u64>, TarError> {
            if value.is_empty() {
                return Ok(None);
            }
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(Some)
                .ok_or(bad(what))
        };
        let id = |what| -> Result<Option<u32>, TarError> {
            number(what)?
                .map(|v| u32::try_from(v).map_err(|_| bad(what)))
                .transpose()
        };
        let bytes = || (!value.is_empty()).then(|| value.to_vec());
        match key {
            b"path" => pax.path = bytes(),
            b"linkpath" => pax.linkpath = bytes(),
            b"size" => pax.size = number("size is not a number")?,
            b"uid" => pax.uid = id("uid is not a 32-bit number")?,
            b"gid" => pax.gid = id("gid is not a 32-bit number")?,
            k if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
        buf = &buf[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, typeflag: u8, size: u64, link: &str) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0001750");
        h[116..123].copy_from_slice(b"0000012");
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        let c = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(c.as_bytes());
        h
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn walk_in_chunks(tar: &[u8], chunk: usize) -> Result<TarListing, TarError> {
        let mut w = TarWalker::new().hashing_stream();
        for c in tar.chunks(chunk) {
            w.push(c)?;
        }
        w.finish()
    }

    fn sample() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(header("./etc/", b'5', 0, ""));
        t.extend(header("./etc/passwd", b'0', 5, ""));
        t.extend(padded(b"root\n"));
        t.extend(header("./etc/pw2", b'1', 0, "etc/passwd"));
        t.extend(header("bin/sh", b'2', 0, "/bin/busybox"));
        t.extend(header("etc/.wh.gone", b'0', 0, ""));
        t.extend(header("var/.wh..wh..opq", b'0', 0, ""));
        let pax = b"31 path=long/pax/name/file.txt\n";
        t.extend(header("PaxHeaders/x", b'x', pax.len() as u64, ""));
        t.extend(padded(pax));
        t.extend(header("short", b'0', 3, ""));
        t.extend(padded(b"abc"));
        let long = b"gnu/long/name\0";
        t.extend(header("././@LongLink", b'L', long.len() as u64, ""));
        t.extend(padded(long));
        t.extend(header("trunc", b'6', 0, ""));
        t.extend([0u8; 1024]);
        t
    }

    #[test]
    fn walks_every_kind_in_any_chunking() {
        let tar = sample();
        let whole = walk_in_chunks(&tar, tar.len()).unwrap();
        for chunk in [1, 7, 511, 512, 513, 4096] {
            assert_eq!(walk_in_chunks(&tar, chunk).unwrap(), whole, "chunk {chunk}");
        }
        let paths: Vec<_> = whole.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc",
                "/etc/passwd",
                "/etc/pw2",
                "/bin/sh",
                "/etc/gone",
                "/var",
                "/long/pax/name/file.txt",
                "/gnu/long/name"
            ]
        );
        let e = &whole.entries[1];
        assert_eq!((e.mode, e.uid, e.gid), (0o644, 1000, 10));
        use sha2::Digest;
        assert_eq!(
            e.kind,
            EntryKind::Regular {
                size: 5,
                sha256: sha2::Sha256::digest(b"root\n").into()
            }
        );
        assert_eq!(
            whole.entries[2].kind,
            EntryKind::Hardlink {
                target: "/etc/passwd".into()
            }
        );
        assert_eq!(whole.entries[4].kind, EntryKind::Whiteout);
        assert_eq!(whole.entries[5].kind, EntryKind::Opaque);
        assert_eq!(whole.entries[7].kind, EntryKind::Fifo);
        assert_eq!(whole.captured["/etc/passwd"], b"root\n");
        assert_eq!(whole.size, tar.len() as u64);
        assert_eq!(
            whole.sha256,
            Some(<[u8; 32]>::from(sha2::Sha256::digest(&tar)))
        );
        let mut unhashed = TarWalker::new();
        unhashed.push(&tar).unwrap();
        let listing = unhashed.finish().unwrap();
        assert_eq!(listing.sha256, None);
        assert_eq!(listing.entries, whole.entries);
        assert_eq!(listing.size, whole.size);
    }

    #[test]
    fn detects_truncation_and_corruption() {
        let tar = sample();
        let err = walk_in_chunks(&tar[..512 * 2 + 3], 100).unwrap_err();
        assert!(matches!(err, TarError::Truncated { .. }), "{err}");
        let mut bad = tar.clone();
        bad[0] ^= 1;
        let err = walk_in_chunks(&bad, 512).unwrap_err();
        assert!(
            matches!(err, TarError::BadChecksum { offset: 0, .. }),
            "{err}"
        );
        let mut esc = Vec::new();
        esc.extend(header("../evil", b'0', 0, ""));
        let err = walk_in_chunks(&esc, 512).unwrap_err();
        assert!(err.to_string().contains("../evil"), "{err}");
    }

    #[test]
    fn header_only_types_carry_no_data() {
        let mut t = Vec::new();
        // A hard link whose size field repeats its target's size: no data follows.
        t.extend(header("f", b'0', 3, ""));
        t.extend(padded(b"abc"));
        t.extend(header("g", b'1', 3, "f"));
        t.extend(header("h", b'5', 700, ""));
        t.extend(header("i", b'0', 0, ""));
        t.extend([0u8; 1024]);
        let listing = walk_in_chunks(&t, 100).unwrap();
        let paths: Vec<_> = listing.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/f", "/g", "/h", "/i"]);
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_number(b"0000644\0", "m", 0).unwrap(), 0o644);
        assert_eq!(parse_number(b"   644 \0", "m", 0).unwrap(), 0o644);
        assert_eq!(parse_number(b"\0\0\0\0", "m", 0).unwrap(), 0);
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[7] = 1;
        assert_eq!(parse_number(&b, "size", 0).unwrap(), 1 << 32);
        assert!(parse_number(b"0009", "m", 0).is_err());
        assert!(parse_number(&[0xff; 8], "uid", 0).is_err());
    }
}

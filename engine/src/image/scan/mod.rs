//! The streamed layer scan: the caller pushes a layer blob's compressed bytes as they
//! arrive ([`LayerScanner::feed`]); the scanner checks the blob digest, decompresses,
//! walks the tar, hashes every regular file and returns a [`LayerSummary`]
//! ([`LayerScanner::finish`]). Nothing blocks and memory does not grow with the layer or
//! its files, so the same code runs in a browser, a worker and on native threads.
//!
//! ```
//! use kiln_engine::image::scan::LayerScanner;
//! # fn demo(blob: &[u8], digest: &str) -> Result<(), kiln_engine::image::scan::ScanError> {
//! let mut scanner = LayerScanner::new(digest, "application/vnd.oci.image.layer.v1.tar+gzip")?;
//! for chunk in blob.chunks(64 * 1024) {
//!     scanner.feed(chunk)?;
//! }
//! let summary = scanner.finish()?;
//! # let _ = summary; Ok(()) }
//! ```

pub mod capture;
pub mod decompress;
pub mod libc_probe;
pub mod path;
pub(crate) mod serde_hex;
pub mod summary;
pub mod tar;
#[cfg(not(target_arch = "wasm32"))]
pub mod threaded;

use std::io::{self, Write};

pub use capture::CaptureSet;
pub use decompress::Compression;
pub use summary::{
    EntryKind, LayerEntry, LayerSummary, CAPTURED_DIRS, CAPTURED_PATHS, CAPTURE_LIMIT,
};

use crate::image::digest::{format_sha256, DigestError, DigestVerifier};
use crate::image::limits::{ImageLimits, LimitExceeded};
use decompress::Decoder;
use tar::{TarError, TarListing, TarWalker};

/// Why a layer could not be scanned. Every variant names the layer (its digest).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The expected digest is malformed, or the blob does not match it.
    #[error("layer: {0}")]
    Digest(#[from] DigestError),
    /// The media type is not a layer type kiln knows.
    #[error("layer {layer}: unknown layer media type {media_type:?}")]
    UnknownMediaType {
        /// The layer digest.
        layer: String,
        /// The media type as given.
        media_type: String,
    },
    /// The blob's magic number contradicts the media type.
    #[error("layer {layer}: media type says {declared} but the blob looks like {found}")]
    CompressionMismatch {
        /// The layer digest.
        layer: String,
        /// Compression named by the media type.
        declared: &'static str,
        /// Compression found from the magic number (`none` for a plain tar).
        found: &'static str,
    },
    /// Decompression failed (corrupt or truncated data).
    #[error("layer {layer}: {compression} decompression failed: {message}")]
    Decompress {
        /// The layer digest.
        layer: String,
        /// The compression in use.
        compression: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The uncompressed stream is not a valid tar (or has an entry kiln refuses).
    #[error("layer {layer}: {source}")]
    Tar {
        /// The layer digest.
        layer: String,
        /// What is wrong in the tar.
        source: TarError,
    },
    /// The tar walker thread could not be started or died (threaded scanner only).
    #[error("layer {layer}: the tar walker thread failed")]
    WorkerLost {
        /// The layer digest.
        layer: String,
    },
    /// A limit of [`ImageLimits`] was hit while decompressing (the zstd window).
    /// Limits hit by the tar walk come as [`ScanError::Tar`] with [`TarError::Limit`];
    /// [`ScanError::limit`] finds either.
    #[error("layer {layer}: {source}")]
    Limit {
        /// The layer digest.
        layer: String,
        /// Which limit, and what exceeded it.
        source: LimitExceeded,
    },
    /// `feed` was called again after an error.
    #[error("layer {layer}: scan already failed")]
    AlreadyFailed {
        /// The layer digest.
        layer: String,
    },
}

impl ScanError {
    /// The limit this error reports, if it is a limit hit (the image's fault: a 400).
    pub fn limit(&self) -> Option<&LimitExceeded> {
        match self {
            ScanError::Limit { source, .. } => Some(source),
            ScanError::Tar {
                source: TarError::Limit { source, .. },
                ..
            } => Some(source),
            _ => None,
        }
    }
}

/// Bytes sniffed before choosing the decoder.
const SNIFF_LEN: usize = 4;

/// Why the tar walk ended without a listing.
#[derive(Debug)]
enum WalkError {
    Tar(TarError),
    /// The walker thread died (threaded mode only).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    WorkerLost,
}

/// The tar walk as the decoder's output: inline, or natively on its own thread.
enum Walk {
    Inline {
        walker: Box<TarWalker>,
        error: Option<TarError>,
    },
    #[cfg(not(target_arch = "wasm32"))]
    Threaded(threaded::Pipe),
}

impl Walk {
    /// The tar error behind a failed write, if the walk is what failed.
    fn take_error(&mut self) -> Option<WalkError> {
        match self {
            Walk::Inline { error, .. } => error.take().map(WalkError::Tar),
            #[cfg(not(target_arch = "wasm32"))]
            Walk::Threaded(pipe) => pipe.take_error(),
        }
    }

    fn finish(self) -> Result<TarListing, WalkError> {
        match self {
            Walk::Inline { walker, error } => match error {
                Some(e) => Err(WalkError::Tar(e)),
                None => walker.finish().map_err(WalkError::Tar),
            },
            #[cfg(not(target_arch = "wasm32"))]
            Walk::Threaded(mut pipe) => pipe.finish(),
        }
    }
}

impl Write for Walk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Walk::Inline { walker, error } => {
                if error.is_some() {
                    return Err(io::Error::other("tar walk already failed"));
                }
                match walker.push(buf) {
                    Ok(()) => Ok(buf.len()),
                    Err(e) => {
                        *error = Some(e);
                        Err(io::Error::other("tar walk failed"))
                    }
                }
            }
            #[cfg(not(target_arch = "wasm32"))]
            Walk::Threaded(pipe) => pipe.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Scans one layer blob pushed in chunks. `Send`, so native callers can run one per
/// thread.
pub struct LayerScanner {
    verifier: DigestVerifier,
    /// Whether `feed` hashes the blob (off when the source verifies it already).
    verify_digest: bool,
    /// Compressed bytes fed.
    fed: u64,
    /// Whether the tar stream is hashed for the summary's `diff_id`.
    diff_id: bool,
    declared: Compression,
    head: Vec<u8>,
    decoder: Option<Decoder<Walk>>,
    failed: bool,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    threaded: bool,
    capture: CaptureSet,
    limits: ImageLimits,
}

impl std::fmt::Debug for LayerScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerScanner")
            .field("layer", &self.verifier.expected())
            .field("compression", &self.declared)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl LayerScanner {
    /// A scanner for the layer blob with digest `digest` (`sha256:<hex>`) and the
    /// descriptor's `media_type` (gzip, zstd or plain tar OCI/Docker layer types).
    pub fn new(digest: &str, media_type: &str) -> Result<Self, ScanError> {
        let compression = Compression::from_media_type(media_type).ok_or_else(|| {
            ScanError::UnknownMediaType {
                layer: digest.to_string(),
                media_type: media_type.to_string(),
            }
        })?;
        Self::with_compression(digest, compression)
    }

    /// A scanner for a blob whose compression is already known.
    pub fn with_compression(digest: &str, compression: Compression) -> Result<Self, ScanError> {
        Ok(Self {
            verifier: DigestVerifier::new(digest)?,
            verify_digest: true,
            fed: 0,
            diff_id: false,
            declared: compression,
            head: Vec::with_capacity(SNIFF_LEN),
            decoder: None,
            failed: false,
            threaded: false,
            capture: CaptureSet::standard(),
            limits: ImageLimits::default(),
        })
    }

    /// Native only: a scanner that walks and hashes the tar on a second thread while
    /// the caller's thread checks the digest and decompresses (bounded hand-over
    /// buffers, see [`threaded`]). Same results as [`LayerScanner::new`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn threaded(digest: &str, media_type: &str) -> Result<Self, ScanError> {
        let mut scanner = Self::new(digest, media_type)?;
        scanner.threaded = true;
        Ok(scanner)
    }

    /// Captures the files of `capture` instead of the standard set (see
    /// [`CaptureSet`]); their contents land in [`LayerSummary::captured`].
    pub fn capturing(mut self, capture: CaptureSet) -> Self {
        self.capture = capture;
        self
    }

    /// Enforces `limits` (per layer: path bytes and depth, entries, uncompressed bytes,
    /// captured bytes, the zstd window) instead of [`ImageLimits::default`]. A hit fails
    /// `feed` as soon as it happens, with an error naming the layer and the limit.
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// For a source that checks the blob's digest itself (the registry client's
    /// [`crate::image::registry::BlobStream`] fails on a mismatch): the scanner then
    /// does not hash the compressed bytes a second time. The caller must treat the
    /// source's digest error as the scan's failure.
    pub fn source_verified(mut self) -> Self {
        self.verify_digest = false;
        self
    }

    /// Also hashes the whole uncompressed tar, for [`LayerSummary::diff_id`]. Off by
    /// default: the conversion takes `diff_id`s from the image config (the container
    /// runtime checks them when it unpacks), and this second SHA-256 pass over every
    /// uncompressed byte would cost as much as hashing the files themselves.
    pub fn computing_diff_id(mut self) -> Self {
        self.diff_id = true;
        self
    }

    /// The layer digest this scanner checks against.
    pub fn layer_digest(&self) -> &str {
        self.verifier.expected()
    }

    /// Compressed bytes fed so far (for progress reports).
    pub fn bytes_fed(&self) -> u64 {
        self.fed
    }

    /// Feeds the next chunk of the compressed blob, of any size.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if self.failed {
            return Err(ScanError::AlreadyFailed {
                layer: self.layer().to_string(),
            });
        }
        if self.verify_digest {
            self.verifier.update(chunk);
        }
        self.fed += chunk.len() as u64;
        let result = if self.decoder.is_some() {
            self.decode(chunk)
        } else {
            self.head.extend_from_slice(chunk);
            if self.head.len() >= SNIFF_LEN {
                self.start()
            } else {
                Ok(())
            }
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends the blob: checks its digest and that the stream was complete, and returns
    /// the layer's summary.
    pub fn finish(mut self) -> Result<LayerSummary, ScanError> {
        if self.failed {
            return Err(ScanError::AlreadyFailed {
                layer: self.layer().to_string(),
            });
        }
        let started = if self.decoder.is_none() {
            self.start()
        } else {
            Ok(())
        };
        let layer = self.layer().to_string();
        let listing = started.and_then(|()| {
            let decoder = self
                .decoder
                .take()
                .ok_or_else(|| ScanError::AlreadyFailed {
                    layer: layer.clone(),
                })?;
            let compression = self.declared.name();
            let decoded = decoder.finish();
            let walk_result = match decoded {
                Ok(walk) => walk.finish(),
                Err(e) => {
                    return Err(ScanError::Decompress {
                        layer: layer.clone(),
                        compression,
                        message: e.to_string(),
                    })
                }
            };
            walk_result.map_err(|e| walk_error(&layer, e))
        });
        // A digest mismatch explains any other failure, so it is reported first.
        if self.verify_digest {
            self.verifier.finish()?;
        }
        let compressed_size = self.fed;
        let listing = listing?;
        Ok(LayerSummary {
            digest: layer,
            diff_id: listing.sha256.as_ref().map(format_sha256),
            compressed_size,
            uncompressed_size: listing.size,
            entries: listing.entries,
            captured: listing.captured,
            libc_versions: listing.libc_versions,
            format: summary::SUMMARY_FORMAT,
        })
    }

    fn layer(&self) -> &str {
        self.verifier.expected()
    }

    /// Checks the magic number and starts the decoder with the buffered head.
    fn start(&mut self) -> Result<(), ScanError> {
        let found = Compression::sniff(&self.head);
        let consistent = match self.declared {
            Compression::None => found.is_none(),
            declared => found == Some(declared) || self.head.len() < SNIFF_LEN && found.is_none(),
        };
        if !consistent {
            return Err(ScanError::CompressionMismatch {
                layer: self.layer().to_string(),
                declared: self.declared.name(),
                found: found.unwrap_or(Compression::None).name(),
            });
        }
        let walk = self.new_walk()?;
        self.decoder = Some(Decoder::with_zstd_window(
            self.declared,
            walk,
            self.limits.zstd_window,
        ));
        let head = std::mem::take(&mut self.head);
        self.decode(&head)
    }

    fn new_walk(&self) -> Result<Walk, ScanError> {
        let mut walker = TarWalker::with_capture(self.capture.clone()).with_limits(self.limits);
        if self.diff_id {
            walker = walker.hashing_stream();
        }
        #[cfg(not(target_arch = "wasm32"))]
        if self.threaded {
            return threaded::Pipe::spawn(walker)
                .map(Walk::Threaded)
                .map_err(|_| ScanError::WorkerLost {
                    layer: self.layer().to_string(),
                });
        }
        Ok(Walk::Inline {
            walker: Box::new(walker),
            error: None,
        })
    }

    fn decode(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        let layer = self.verifier.expected();
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(ScanError::AlreadyFailed {
                layer: layer.to_string(),
            });
        };
        match decoder.write(chunk) {
            Ok(()) => Ok(()),
            Err(e) => Err(match decoder.get_mut().take_error() {
                Some(walk) => walk_error(layer, walk),
                None => match e.get_ref().and_then(|r| r.downcast_ref::<LimitExceeded>()) {
                    Some(hit) => ScanError::Limit {
                        layer: layer.to_string(),
                        source: hit.clone(),
                    },
                    None => ScanError::Decompress {
                        layer: layer.to_string(),
                        compression: self.declared.name(),
                        message: e.to_string(),
                    },
                },
            }),
        }
    }
}

fn walk_error(layer: &str, e: WalkError) -> ScanError {
    match e {
        WalkError::Tar(source) => ScanError::Tar {
            layer: layer.to_string(),
            source,
        },
        WalkError::WorkerLost => ScanError::WorkerLost {
            layer: layer.to_string(),
        },
    }
}

/// Scans a whole blob held in memory (fed in 64 KiB chunks), with its `diff_id`: a
/// convenience for tests and small layers.
pub fn scan_blob(digest: &str, media_type: &str, blob: &[u8]) -> Result<LayerSummary, ScanError> {
    let mut scanner = LayerScanner::new(digest, media_type)?.computing_diff_id();
    for chunk in blob.chunks(64 * 1024) {
        scanner.feed(chunk)?;
    }
    scanner.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::digest::sha256_digest;

    fn assert_send<T: Send>() {}

    #[test]
    fn scanner_is_send() {
        assert_send::<LayerScanner>();
    }

    fn tar_with_passwd() -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        let mut h = ::tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(::tar::EntryType::Regular);
        b.append_data(&mut h, "etc/passwd", &b"root\n"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    #[test]
    fn scans_gzip_zstd_and_plain() {
        let tar = tar_with_passwd();
        let gz = gzip(&tar);
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (mt, blob) in [(GZ, &gz), (TAR, &tar), (ZSTD, &zst)] {
            let s = scan_blob(&sha256_digest(blob), mt, blob).unwrap();
            assert_eq!(s.diff_id, Some(sha256_digest(&tar)), "{mt}");
            assert_eq!(s.compressed_size, blob.len() as u64);
            assert_eq!(s.uncompressed_size, tar.len() as u64);
            assert_eq!(s.entries.len(), 1);
            assert_eq!(s.captured["/etc/passwd"], b"root\n");
        }
    }

    #[test]
    fn digest_mismatch_names_the_layer() {
        let gz = gzip(&tar_with_passwd());
        let wrong = sha256_digest(b"other");
        let err = scan_blob(&wrong, GZ, &gz).unwrap_err();
        assert!(matches!(err, ScanError::Digest(_)));
        assert!(err.to_string().contains(&wrong), "{err}");
    }

    #[test]
    fn diff_id_only_when_asked_and_digest_left_to_a_verified_source() {
        let tar = tar_with_passwd();
        let gz = gzip(&tar);
        let feed = |s: &mut LayerScanner| s.feed(&gz).unwrap();
        let mut plain = LayerScanner::new(&sha256_digest(&gz), GZ).unwrap();
        feed(&mut plain);
        let plain = plain.finish().unwrap();
        assert_eq!(plain.diff_id, None);
        let with = scan_blob(&sha256_digest(&gz), GZ, &gz).unwrap();
        assert_eq!(with.diff_id, Some(sha256_digest(&tar)));
        assert_eq!(
            LayerSummary {
                diff_id: None,
                ..with
            },
            plain
        );
        // A source that verifies the digest itself: the scanner does not check it
        // again (here a wrong one passes), and still counts the compressed bytes.
        let wrong = sha256_digest(b"other");
        let mut trusting = LayerScanner::new(&wrong, GZ).unwrap().source_verified();
        feed(&mut trusting);
        assert_eq!(trusting.bytes_fed(), gz.len() as u64);
        let s = trusting.finish().unwrap();
        assert_eq!(
            (s.digest.as_str(), s.compressed_size),
            (wrong.as_str(), gz.len() as u64)
        );
        assert!(scan_blob(&wrong, GZ, &gz).is_err());
    }

    #[test]
    fn magic_must_match_media_type() {
        let tar = tar_with_passwd();
        let gz = gzip(&tar);
        let err = scan_blob(&sha256_digest(&gz), TAR, &gz).unwrap_err();
        assert!(
            matches!(err, ScanError::CompressionMismatch { .. }),
            "{err}"
        );
        let err = scan_blob(&sha256_digest(&tar), GZ, &tar).unwrap_err();
        assert!(
            matches!(err, ScanError::CompressionMismatch { .. }),
            "{err}"
        );
        let err = scan_blob(&sha256_digest(&gz), "application/json", &gz).unwrap_err();
        assert!(matches!(err, ScanError::UnknownMediaType { .. }), "{err}");
    }

    #[test]
    fn corrupt_and_truncated_blobs_fail_cleanly() {
        let gz = gzip(&tar_with_passwd());
        let cut = &gz[..gz.len() - 10];
        let err = scan_blob(&sha256_digest(cut), GZ, cut).unwrap_err();
        assert!(matches!(err, ScanError::Decompress { .. }), "{err}");
        let mut bad = gz.clone();
        bad[20] ^= 0xff;
        assert!(scan_blob(&sha256_digest(&bad), GZ, &bad).is_err());
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn many_files_tar() -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        for i in 0..64u32 {
            let data: Vec<u8> = (0..i * 997).map(|j| (j % 251) as u8).collect();
            let mut h = ::tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(::tar::EntryType::Regular);
            b.append_data(&mut h, format!("d/f{i}"), &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn scan_threaded(blob: &[u8], chunk: usize) -> Result<LayerSummary, ScanError> {
        let mut s = LayerScanner::threaded(&sha256_digest(blob), GZ)?.computing_diff_id();
        for c in blob.chunks(chunk) {
            s.feed(c)?;
        }
        s.finish()
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn threaded_scanner_matches_inline_and_reports_the_same_errors() {
        let tar = many_files_tar();
        assert!(tar.len() > 8 * threaded::BUF_LEN);
        let gz = gzip(&tar);
        let inline = scan_blob(&sha256_digest(&gz), GZ, &gz).unwrap();
        assert_eq!(scan_threaded(&gz, 4096).unwrap(), inline);
        assert_eq!(scan_threaded(&gz, 1 << 20).unwrap(), inline);

        let cut = &gz[..gz.len() / 2];
        let err = scan_threaded(cut, 4096).unwrap_err();
        assert!(matches!(err, ScanError::Decompress { .. }), "{err}");

        let mut bad_header = tar.clone();
        bad_header[0] ^= 0x11; // the first header's name: checksum mismatch
        let bad = gzip(&bad_header);
        let err = scan_threaded(&bad, 4096).unwrap_err();
        assert!(
            matches!(
                err,
                ScanError::Tar {
                    source: TarError::BadChecksum { .. },
                    ..
                }
            ),
            "{err}"
        );
        let err = scan_blob(&sha256_digest(&bad), GZ, &bad).unwrap_err();
        assert!(matches!(err, ScanError::Tar { .. }), "{err}");
    }
}

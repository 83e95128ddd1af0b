//! Push-driven decompression of layer blobs: the caller writes compressed chunks, the
//! decoder writes uncompressed bytes into a sink as they become available.
//!
//! gzip runs through one push loop (`GzipDecoder`, 256 KiB output buffer, multi-member
//! files accepted) over a member inflater that parses the header and checks CRC-32 and
//! length: Intel ISA-L's igzip natively (the `kiln-igzip` crate, about 1.9x as fast),
//! flate2's zlib-rs backend in wasm. Both are tested natively against the same cases.
//! zstd uses ruzstd: this module frames the stream itself (frame headers, blocks of at
//! most 128 KiB, skippable frames) and hands ruzstd only complete units, so memory stays
//! bounded by one block plus the frame's window (at most [`MAX_ZSTD_WINDOW`]).

use std::io::{self, Write};

use flate2::{Decompress, FlushDecompress, Status};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::image::limits::LimitExceeded;

/// Largest zstd window ever accepted (libzstd's default limit, `windowLogMax` 27);
/// the scan's [`crate::image::limits::ImageLimits::zstd_window`] (32 MiB by default)
/// is usually lower.
pub const MAX_ZSTD_WINDOW: u64 = 1 << 27;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (`+gzip`, Docker's `tar.gzip`).
    Gzip,
    /// Zstandard (`+zstd`).
    Zstd,
    /// A plain tar.
    None,
}

impl Compression {
    /// The compression named by a layer media type, or `None` if the media type is not
    /// a layer type kiln knows.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let mt = media_type.trim();
        let known = mt.starts_with("application/vnd.oci.image.layer.")
            || mt.starts_with("application/vnd.docker.image.rootfs.");
        if !known {
            return None;
        }
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// The compression whose magic number starts `head`, if any (`None` means "not
    /// gzip or zstd", which a tar is).
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// A short name (`gzip`, `zstd`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }
}

/// A push decoder writing into `W`.
pub struct Decoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Gzip(Box<GzipDecoder<W>>),
    Zstd(Box<ZstdDecoder<W>>),
    None(W),
}

impl<W: Write> std::fmt::Debug for Decoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.inner {
            Inner::Gzip(_) => "gzip",
            Inner::Zstd(_) => "zstd",
            Inner::None(_) => "none",
        };
        f.debug_struct("Decoder")
            .field("compression", &name)
            .finish()
    }
}

impl<W: Write> Decoder<W> {
    /// A decoder for `compression` writing uncompressed bytes into `sink`.
    pub fn new(compression: Compression, sink: W) -> Self {
        Self::with_zstd_window(compression, sink, MAX_ZSTD_WINDOW)
    }

    /// A decoder whose zstd frames may ask for a window of at most `max_window` bytes
    /// (capped at [`MAX_ZSTD_WINDOW`]); a larger one fails the write with an
    /// `io::Error` wrapping a [`LimitExceeded`] (`zstd-window`), before any memory is
    /// reserved for it.
    pub fn with_zstd_window(compression: Compression, sink: W, max_window: u64) -> Self {
        let inner = match compression {
            Compression::Gzip => Inner::Gzip(Box::new(GzipDecoder::new(sink))),
            Compression::Zstd => Inner::Zstd(Box::new(ZstdDecoder::new(
                sink,
                max_window.min(MAX_ZSTD_WINDOW),
            ))),
            Compression::None => Inner::None(sink),
        };
        Self { inner }
    }

    /// Decodes the next compressed bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Gzip(d) => d.write(data),
            Inner::Zstd(d) => d.write(data),
            Inner::None(w) => w.write_all(data),
        }
    }

    /// Ends the stream (checking it is complete) and returns the sink.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Gzip(d) => d.finish(),
            Inner::Zstd(d) => d.finish(),
            Inner::None(w) => Ok(w),
        }
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        match &mut self.inner {
            Inner::Gzip(d) => &mut d.sink,
            Inner::Zstd(d) => &mut d.sink,
            Inner::None(w) => w,
        }
    }
}

/// Output buffer of the gzip decoder. zlib-rs inflates fastest into big buffers: with
/// 32 KiB (flate2's writer) every output byte is also copied into the sliding window and
/// the fast loop restarts 8 times as often; 256 KiB measured 2% less inflate time alone
/// and 4–5% less CPU for a whole layer scan. igzip is indifferent to it (32 KiB and
/// 256 KiB inflate a benchmark layer within 3% of each other).
const GZIP_OUT: usize = 256 * 1024;

/// What one inflate call did: input consumed, output produced, whether the member ended
/// (its trailer read and checked).
type Progress = (usize, usize, bool);

/// A gzip member inflater the push loop drives: the header, the deflate data and the
/// trailer (CRC-32 and length) are parsed and checked by the implementation.
trait GzipInflate {
    /// A decoder at the start of a member.
    fn start() -> Self;
    /// Decodes from `input` into `output` until the input is used up, the output is
    /// full or the member ends.
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Progress, String>;
    /// Starts the next member.
    fn restart(&mut self);
}

/// zlib-rs (through flate2) in gzip mode: every target, and the only one in wasm.
impl GzipInflate for Decompress {
    fn start() -> Self {
        Decompress::new_gzip(15)
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Progress, String> {
        let (in_before, out_before) = (self.total_in(), self.total_out());
        let status = self
            .decompress(input, output, FlushDecompress::None)
            .map_err(|e| e.to_string())?;
        let used = (self.total_in() - in_before) as usize;
        let made = (self.total_out() - out_before) as usize;
        Ok((used, made, status == Status::StreamEnd))
    }

    fn restart(&mut self) {
        *self = Decompress::new_gzip(15);
    }
}

/// Intel ISA-L's igzip (kiln-igzip), natively: about 1.9x zlib-rs's inflate speed here.
#[cfg(not(target_arch = "wasm32"))]
impl GzipInflate for kiln_igzip::Inflater {
    fn start() -> Self {
        kiln_igzip::Inflater::new()
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Progress, String> {
        let s = kiln_igzip::Inflater::step(self, input, output).map_err(|e| e.to_string())?;
        Ok((s.consumed, s.produced, s.member_end))
    }

    fn restart(&mut self) {
        kiln_igzip::Inflater::restart(self)
    }
}

/// The gzip inflater layer scans use: igzip natively, zlib-rs in wasm.
#[cfg(not(target_arch = "wasm32"))]
type LayerInflater = kiln_igzip::Inflater;
#[cfg(target_arch = "wasm32")]
type LayerInflater = Decompress;

/// A push gzip decoder: each member's header, CRC-32 and length are checked by the
/// inflater `I`, which starts afresh after each member so that concatenated members
/// decode as one stream, as `gzip -d` does. Bytes after a member that do not start
/// another member are an error.
struct GzipDecoder<W: Write, I: GzipInflate = LayerInflater> {
    sink: W,
    inflate: I,
    out: Vec<u8>,
    /// Compressed bytes consumed (for error positions).
    consumed: u64,
    /// Members decoded to their end.
    members: u64,
    /// Whether bytes of a member that has not ended were consumed.
    in_member: bool,
}

fn gzip_err(at: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("gzip stream at byte {at}: {what}"),
    )
}

impl<W: Write, I: GzipInflate> GzipDecoder<W, I> {
    fn new(sink: W) -> Self {
        Self {
            sink,
            inflate: I::start(),
            out: vec![0; GZIP_OUT],
            consumed: 0,
            members: 0,
            in_member: false,
        }
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        loop {
            let (used, made, ended) = self
                .inflate
                .step(data, &mut self.out)
                .map_err(|e| gzip_err(self.consumed, e))?;
            data = &data[used..];
            self.consumed += used as u64;
            self.in_member |= used > 0;
            if made > 0 {
                self.sink.write_all(&self.out[..made])?;
            }
            if ended {
                self.members += 1;
                self.in_member = false;
                // The next member, if any, starts with its own header.
                self.inflate.restart();
                if data.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if data.is_empty() {
                // Done with this chunk unless the output filled up (a full buffer may
                // hold back more output).
                if made < self.out.len() {
                    return Ok(());
                }
                continue;
            }
            // Input left, room for output, and nothing done: the inflater is stuck, and
            // returning would drop the rest of the chunk.
            if used == 0 && made == 0 {
                return Err(gzip_err(self.consumed, "the decoder makes no progress"));
            }
        }
    }

    fn finish(mut self) -> io::Result<W> {
        if self.in_member || self.members == 0 {
            return Err(gzip_err(self.consumed, "stream ends inside a member"));
        }
        self.sink.flush()?;
        Ok(self.sink)
    }
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// Largest zstd block (RFC 8878: `Block_Maximum_Size` is at most 128 KiB).
const MAX_BLOCK: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    FrameStart,
    Blocks { checksum: bool },
    Skip { remaining: u64 },
}

struct ZstdDecoder<W: Write> {
    sink: W,
    frame: FrameDecoder,
    buf: Vec<u8>,
    stage: Stage,
    consumed: u64,
    max_window: u64,
}

/// The window a zstd frame header asks for (RFC 8878 3.1.1.1.2): from the window
/// descriptor, or for a single-segment frame its content size. `header` is complete.
fn zstd_window(header: &[u8], single_segment: bool, dict_len: usize, fcs_len: usize) -> u64 {
    if !single_segment {
        let wd = header.get(5).copied().unwrap_or(0);
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        return base + (base / 8) * u64::from(wd & 7);
    }
    let start = 5 + dict_len;
    let fcs = header.get(start..start + fcs_len).unwrap_or(&[]);
    let mut v = 0u64;
    for (i, b) in fcs.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    if fcs_len == 2 {
        v + 256
    } else {
        v
    }
}

fn zstd_err(at: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("zstd stream at byte {at}: {what}"),
    )
}

impl<W: Write> ZstdDecoder<W> {
    fn new(sink: W, max_window: u64) -> Self {
        let mut frame = FrameDecoder::new();
        frame.set_max_window_size(max_window);
        Self {
            sink,
            frame,
            buf: Vec::new(),
            stage: Stage::FrameStart,
            consumed: 0,
            max_window,
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = self.process(&mut pos);
        self.buf.drain(..pos);
        result
    }

    /// Decodes every complete unit in `buf[pos..]`, advancing `pos`.
    fn process(&mut self, pos: &mut usize) -> io::Result<()> {
        loop {
            let avail = &self.buf[*pos..];
            let used = match self.stage {
                Stage::FrameStart => {
                    let Some(magic) = avail.get(..4) else { break };
                    let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
                    if (0x184D_2A50..=0x184D_2A5F).contains(&magic) {
                        let Some(len) = avail.get(4..8) else { break };
                        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
                        self.stage = Stage::Skip {
                            remaining: u64::from(len),
                        };
                        8
                    } else if magic == ZSTD_MAGIC {
                        let Some(&fhd) = avail.get(4) else { break };
                        let single_segment = fhd & 0x20 != 0;
                        let checksum = fhd & 0x04 != 0;
                        let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 3)];
                        let fcs_len = match fhd >> 6 {
                            0 => usize::from(single_segment),
                            1 => 2,
                            2 => 4,
                            _ => 8,
                        };
                        let header_len = 5 + usize::from(!single_segment) + dict_len + fcs_len;
                        let Some(header) = avail.get(..header_len) else {
                            break;
                        };
                        let window = zstd_window(header, single_segment, dict_len, fcs_len);
                        if window > self.max_window {
                            return Err(io::Error::other(LimitExceeded::new(
                                "zstd-window",
                                self.max_window,
                                format!(
                                    "frame at byte {} asks for a {window}-byte window",
                                    self.consumed
                                ),
                            )));
                        }
                        self.frame
                            .reset(header)
                            .map_err(|e| zstd_err(self.consumed, e))?;
                        self.stage = Stage::Blocks { checksum };
                        header_len
                    } else {
                        return Err(zstd_err(self.consumed, "not a zstd frame (bad magic)"));
                    }
                }
                Stage::Blocks { checksum } => {
                    let Some(h) = avail.get(..3) else { break };
                    let h = u32::from(h[0]) | (u32::from(h[1]) << 8) | (u32::from(h[2]) << 16);
                    let last = h & 1 != 0;
                    let block_type = (h >> 1) & 3;
                    let content = match block_type {
                        1 => 1, // RLE: one byte repeated
                        3 => return Err(zstd_err(self.consumed, "reserved block type")),
                        _ => (h >> 3) as usize,
                    };
                    if content > MAX_BLOCK {
                        return Err(zstd_err(self.consumed, "block larger than 128 KiB"));
                    }
                    let need = 3 + content + if last && checksum { 4 } else { 0 };
                    let Some(unit) = avail.get(..need) else { break };
                    self.frame
                        .decode_blocks(unit, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(|e| zstd_err(self.consumed, e))?;
                    self.frame.collect_to_writer(&mut self.sink)?;
                    if last {
                        if !self.frame.is_finished() {
                            return Err(zstd_err(self.consumed, "frame did not finish"));
                        }
                        self.frame.collect_to_writer(&mut self.sink)?;
                        if checksum
                            && self.frame.get_checksum_from_data()
                                != self.frame.get_calculated_checksum()
                        {
                            return Err(zstd_err(self.consumed, "frame checksum mismatch"));
                        }
                        self.stage = Stage::FrameStart;
                    }
                    need
                }
                Stage::Skip { remaining } => {
                    if avail.is_empty() {
                        break;
                    }
                    let n = remaining.min(avail.len() as u64);
                    let left = remaining - n;
                    self.stage = if left == 0 {
                        Stage::FrameStart
                    } else {
                        Stage::Skip { remaining: left }
                    };
                    n as usize
                }
            };
            *pos += used;
            self.consumed += used as u64;
            if self.stage == Stage::FrameStart && self.buf.len() == *pos {
                break;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if self.stage != Stage::FrameStart || !self.buf.is_empty() || self.consumed == 0 {
            return Err(zstd_err(
                self.consumed + self.buf.len() as u64,
                "stream ends inside a frame",
            ));
        }
        self.sink.flush()?;
        Ok(self.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<u8> {
        let mut v = Vec::new();
        let mut x: u32 = 1;
        for i in 0..400_000u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            v.push(if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'a' + (i % 7) as u8
            });
        }
        v
    }

    fn decode(c: Compression, blob: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let mut d = Decoder::new(c, Vec::new());
        for piece in blob.chunks(chunk) {
            d.write(piece)?;
        }
        d.finish()
    }

    /// The gzip loop over one inflater.
    fn gunzip_with<I: GzipInflate>(blob: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let mut d = GzipDecoder::<_, I>::new(Vec::new());
        for piece in blob.chunks(chunk) {
            d.write(piece)?;
        }
        d.finish()
    }

    /// gzip through the layer scans' inflater and, natively, through zlib-rs as well:
    /// both must agree (the same output, or both an error), and the result is returned.
    fn gunzip(blob: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let layer = decode(Compression::Gzip, blob, chunk);
        let zlib_rs = gunzip_with::<Decompress>(blob, chunk);
        let brief = |r: &io::Result<Vec<u8>>| match r {
            Ok(v) => format!("{} bytes", v.len()),
            Err(e) => e.to_string(),
        };
        match (&layer, &zlib_rs) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(_), Err(_)) => {}
            _ => panic!(
                "the inflaters disagree (chunk {chunk}): {} vs zlib-rs {}",
                brief(&layer),
                brief(&zlib_rs)
            ),
        }
        layer
    }

    #[test]
    fn media_types_and_magic() {
        use Compression::*;
        let g = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(Compression::from_media_type(g), Some(Gzip));
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Gzip)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Zstd)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar"),
            Some(None)
        );
        assert_eq!(Compression::from_media_type("text/plain"), Option::None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Some(Gzip));
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Some(Zstd));
        assert_eq!(Compression::sniff(b"etc/"), Option::None);
    }

    #[test]
    fn gzip_multi_member_in_small_chunks() {
        let d = data();
        let mut blob = Vec::new();
        for part in d.chunks(150_000) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            blob.extend(e.finish().unwrap());
        }
        for chunk in [1, 1000, 65536] {
            assert_eq!(gunzip(&blob, chunk).unwrap(), d);
        }
        assert!(gunzip(&blob[..blob.len() - 3], 4096).is_err());
    }

    /// A gzip member written field by field (RFC 1952), with every optional header field
    /// and a header CRC.
    fn full_header_member(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3];
        m.extend(5u16.to_le_bytes());
        m.extend(b"AB\x02\x00\x07"[..5].iter());
        m.extend(b"name.tar\0");
        m.extend(b"a comment\0");
        let mut crc = flate2::Crc::new();
        crc.update(&m);
        m.extend(((crc.sum() & 0xffff) as u16).to_le_bytes());
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(payload).unwrap();
        m.extend(e.finish().unwrap());
        let mut crc = flate2::Crc::new();
        crc.update(payload);
        m.extend(crc.sum().to_le_bytes());
        m.extend((payload.len() as u32).to_le_bytes());
        m
    }

    #[test]
    fn gzip_header_fields_checks_and_trailing_bytes() {
        let d = data();
        // Two members with every header field, then one plain member.
        let mut blob = full_header_member(&d[..300_000]);
        blob.extend(full_header_member(&d[300_000..350_000]));
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&d[350_000..]).unwrap();
        blob.extend(e.finish().unwrap());
        for chunk in [1, 7, 4096, blob.len()] {
            assert_eq!(gunzip(&blob, chunk).unwrap(), d, "{chunk}");
        }
        let single = full_header_member(&d[..1000]);
        let broken = |at: usize| {
            let mut b = single.clone();
            b[at] ^= 0x55;
            gunzip(&b, 64)
        };
        // Reserved header flags, header CRC, trailer CRC-32, trailer length: each checked.
        let hcrc_at = 10 + 2 + 5 + 9 + 10;
        for at in [3, hcrc_at, single.len() - 8, single.len() - 1] {
            let err = broken(at).unwrap_err();
            assert!(err.to_string().contains("gzip stream"), "{at}: {err}");
        }
        // Bytes after a member that are not a member; an empty or cut stream.
        let mut trailing = single.clone();
        trailing.extend(b"garbage!");
        assert!(gunzip(&trailing, 4096).is_err());
        assert!(gunzip(b"", 1).is_err());
        for cut in [1, 9, 20, single.len() - 4] {
            let err = gunzip(&single[..cut], 4096).unwrap_err();
            assert!(err.to_string().contains("inside a member"), "{cut}: {err}");
        }
    }

    /// Damaged gzip streams (bytes flipped, cut, spliced): igzip and zlib-rs both accept
    /// with the same bytes, or both refuse. Also catches a stuck inflater (which errs).
    #[cfg(not(target_arch = "wasm32"))]
    mod differential {
        use super::*;
        use proptest::prelude::*;

        fn members(seed: u64, parts: usize) -> Vec<u8> {
            let mut x = seed | 1;
            let mut blob = Vec::new();
            for p in 0..parts {
                let mut data = Vec::new();
                for _ in 0..(2_000 + 7_919 * p) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    data.push(if x.is_multiple_of(5) {
                        x as u8
                    } else {
                        b'a' + (x % 4) as u8
                    });
                }
                let level = flate2::Compression::new((seed % 10) as u32);
                let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                e.write_all(&data).unwrap();
                blob.extend(e.finish().unwrap());
            }
            blob
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]
            #[test]
            fn igzip_and_zlib_rs_agree(
                seed in any::<u64>(),
                parts in 1usize..4,
                flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
                cut in proptest::option::of(any::<prop::sample::Index>()),
                chunk in prop_oneof![Just(1usize), 2usize..64, 64usize..70_000],
            ) {
                let mut blob = members(seed, parts);
                for (at, mask) in &flips {
                    let i = at.index(blob.len());
                    blob[i] ^= mask;
                }
                if let Some(c) = cut {
                    blob.truncate(c.index(blob.len()));
                }
                let _ = gunzip(&blob, chunk);
            }
        }
    }

    #[test]
    fn zstd_frames_and_skippable_in_small_chunks() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let d = data();
        let mut blob = compress_to_vec(&d[..200_000], CompressionLevel::Fastest);
        // A skippable frame between two frames.
        blob.extend(0x184D_2A50u32.to_le_bytes());
        blob.extend(3u32.to_le_bytes());
        blob.extend([9, 9, 9]);
        blob.extend(compress_to_vec(&d[200_000..], CompressionLevel::Fastest));
        for chunk in [1, 999, 65536, blob.len()] {
            assert_eq!(
                decode(Compression::Zstd, &blob, chunk).unwrap(),
                d,
                "{chunk}"
            );
        }
        let err = decode(Compression::Zstd, &blob[..blob.len() - 2], 4096).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        assert!(decode(Compression::Zstd, b"not zstd at all", 4).is_err());
    }
}

//! The gzip encoder behind written layers, pinned to miniz_oxide's deflate whatever
//! backend flate2 uses elsewhere in the build (the layer scan decompresses with
//! zlib-rs through flate2; flate2's backend is one choice for the whole build, so the
//! writer must not go through it or its bytes would follow that choice).
//!
//! The output is byte-for-byte what `flate2::GzBuilder::new().mtime(0)
//! .operating_system(255).write(w, Compression::new(level))` produced with flate2's
//! miniz_oxide backend: a 10-byte header (no name, mtime 0, XFL from the level, OS
//! 255), raw deflate from miniz_oxide at `level`, then CRC-32 and length mod 2^32.

use std::io::{self, Write};

use miniz_oxide::deflate::core::CompressorOxide;
use miniz_oxide::deflate::stream::deflate;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// Size of the output buffer handed to the compressor (flate2's, too).
const OUT_LEN: usize = 32 * 1024;

/// Streaming gzip encoder with fixed header fields (see the module docs).
pub struct GzipEncoder<W: Write> {
    inner: W,
    compressor: Box<CompressorOxide>,
    out: Vec<u8>,
    header: Option<[u8; 10]>,
    crc: crc32fast::Hasher,
    len: u32,
}

impl<W: Write> std::fmt::Debug for GzipEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipEncoder")
            .field("input_len_mod_2_32", &self.len)
            .finish_non_exhaustive()
    }
}

fn deflate_failed(what: &str) -> io::Error {
    io::Error::other(format!("gzip: deflate failed ({what})"))
}

impl<W: Write> GzipEncoder<W> {
    /// An encoder at deflate `level` (0–9, larger values are clamped to 9) writing into
    /// `inner`.
    pub fn new(inner: W, level: u32) -> Self {
        let level = level.min(9);
        let mut compressor: Box<CompressorOxide> = Box::default();
        compressor.set_format_and_level(DataFormat::Raw, level as u8);
        // XFL as flate2 sets it: 2 for the best level, 4 for the fastest, else 0.
        let xfl = match level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        Self {
            inner,
            compressor,
            out: vec![0; OUT_LEN],
            header: Some([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if let Some(header) = self.header.take() {
            self.inner.write_all(&header)?;
        }
        Ok(())
    }

    /// Runs the compressor once over `input`; returns (consumed, written, finished).
    fn step(&mut self, input: &[u8], flush: MZFlush) -> io::Result<(usize, usize, bool)> {
        let r = deflate(&mut self.compressor, input, &mut self.out, flush);
        let done = match r.status {
            Ok(MZStatus::StreamEnd) => true,
            Ok(MZStatus::Ok) | Err(MZError::Buf) => false,
            Ok(MZStatus::NeedDict) => return Err(deflate_failed("needs a dictionary")),
            Err(e) => return Err(deflate_failed(&format!("{e:?}"))),
        };
        let written = self
            .out
            .get(..r.bytes_written)
            .ok_or_else(|| deflate_failed("wrote past its buffer"))?;
        self.inner.write_all(written)?;
        Ok((r.bytes_consumed, r.bytes_written, done))
    }

    /// Ends the deflate stream, writes the trailer and returns the writer underneath
    /// (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        loop {
            let (_, written, done) = self.step(&[], MZFlush::Finish)?;
            if done {
                break;
            }
            if written == 0 {
                return Err(deflate_failed("no progress while finishing"));
            }
        }
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&self.len.to_le_bytes())?;
        Ok(self.inner)
    }

    /// The writer underneath.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for GzipEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_header()?;
        let mut rest = data;
        while !rest.is_empty() {
            let (consumed, written, _) = self.step(rest, MZFlush::None)?;
            if consumed == 0 && written == 0 {
                return Err(deflate_failed("no progress"));
            }
            rest = rest.get(consumed..).unwrap_or_default();
        }
        self.crc.update(data);
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        self.len = self.len.wrapping_add(data.len() as u32);
        Ok(data.len())
    }

    /// A deflate sync flush (an empty stored block, so everything written so far can be
    /// decoded), then a flush of the writer underneath. Part of the pinned output: flate2
    /// did the same, and `TarBuilder::finish` flushes.
    fn flush(&mut self) -> io::Result<()> {
        self.write_header()?;
        loop {
            let (_, written, _) = self.step(&[], MZFlush::Sync)?;
            if written < OUT_LEN {
                break;
            }
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 7;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if i % 5 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 11) as u8
                }
            })
            .collect()
    }

    fn encode(data: &[u8], level: u32, chunk: usize) -> Vec<u8> {
        let mut e = GzipEncoder::new(Vec::new(), level);
        for piece in data.chunks(chunk.max(1)) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    fn encode_flushed(data: &[u8], level: u32) -> Vec<u8> {
        let (a, b) = data.split_at(data.len() / 2);
        let mut e = GzipEncoder::new(Vec::new(), level);
        e.write_all(a).unwrap();
        e.flush().unwrap();
        e.write_all(b).unwrap();
        e.flush().unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trips_and_ignores_chunking() {
        let data = sample(300_000);
        for level in [1, 6, 9] {
            let whole = encode(&data, level, data.len());
            assert_eq!(encode(&data, level, 1000), whole, "level {level}");
            assert_eq!(encode(&data, level, 65_536), whole, "level {level}");
            let mut back = Vec::new();
            let mut d = flate2::write::GzDecoder::new(&mut back);
            d.write_all(&whole).unwrap();
            d.finish().unwrap();
            assert_eq!(back, data, "level {level}");
        }
    }

    #[test]
    fn header_and_empty_stream() {
        let empty = encode(&[], 6, 1);
        assert_eq!(&empty[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        assert_eq!(&empty[empty.len() - 8..], &[0; 8]);
        assert_eq!(encode(b"x", 1, 1)[8], 4);
        assert_eq!(encode(b"x", 9, 1)[8], 2);
    }

    #[test]
    fn same_bytes_as_flate2_with_miniz_oxide() {
        // Pinned digests of what flate2 1.1 (miniz_oxide 0.9 backend) wrote for this
        // input, `GzBuilder::new().mtime(0).operating_system(255)`, before the scan
        // moved flate2 to zlib-rs.
        let data = sample(300_000);
        let l6 = crate::image::digest::sha256_digest(&encode(&data, 6, 4096));
        let l1 = crate::image::digest::sha256_digest(&encode(&data, 1, 4096));
        let flushed = crate::image::digest::sha256_digest(&encode_flushed(&data, 6));
        assert_eq!(l6, PINNED_L6);
        assert_eq!(l1, PINNED_L1);
        assert_eq!(flushed, PINNED_L6_FLUSHED);
        let mut back = Vec::new();
        let mut d = flate2::write::GzDecoder::new(&mut back);
        d.write_all(&encode_flushed(&data, 6)).unwrap();
        d.finish().unwrap();
        assert_eq!(back, data);
    }

    const PINNED_L6: &str =
        "sha256:248fdb6357a4fe181cfa049c63b6d9d736a648902421ae04ab0d1abd002eab0c";
    const PINNED_L1: &str =
        "sha256:3f93446383deb4af17e4b31d3a4df455ff0c6f7b7fa74d65a977df0275bac77d";
    const PINNED_L6_FLUSHED: &str =
        "sha256:8a6e4a83cd13930c48fda07f9429bbd5efb2faccdeb619f9221efe7bdf27a5e7";
}

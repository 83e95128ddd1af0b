//! Reading and writing SGXS measured streams (Fortanix's format).
//!
//! An SGXS stream is a series of 64-byte blobs laid out like the measurement records:
//! ECREATE (or UNSIZED), EADD, and EEXTEND / UNMEASRD, each of the last two followed by
//! 256 data bytes. Its hash is SHA-256 over ECREATE, EADD and EEXTEND (with data) in
//! stream order; UNMEASRD blobs are skipped. Gramine's descending order is accepted.

use std::io::{self, Read, Write};

use super::measure::{
    eadd_record, ecreate_record, eextend_record, EnclaveLayout, Measurer, RecordSink, CHUNK_SIZE,
    PAGE_SIZE, TAG_EADD, TAG_ECREATE, TAG_EEXTEND,
};

/// Tag of an UNSIZED blob ("UNSIZED\0"): an ECREATE whose size is not yet known.
pub const TAG_UNSIZED: u64 = 0x0044_455A_4953_4E55;
/// Tag of an UNMEASRD blob ("UNMEASRD"): data loaded but not measured.
pub const TAG_UNMEASRD: u64 = 0x4452_5341_454D_4E55;

/// Why an SGXS stream cannot be measured. Offsets are byte offsets in the stream.
#[derive(Debug, thiserror::Error)]
pub enum SgxsError {
    /// Reading failed.
    #[error("reading the SGXS stream at byte {offset}: {source}")]
    Io {
        /// Offset of the blob being read.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The stream ends inside a blob.
    #[error("SGXS stream truncated inside the blob at byte {offset}")]
    Truncated {
        /// Offset of the incomplete blob.
        offset: u64,
    },
    /// The stream is empty.
    #[error("SGXS stream is empty (no ECREATE)")]
    Empty,
    /// A blob has an unknown tag.
    #[error("SGXS blob at byte {offset} has unknown tag {tag:#018x}")]
    UnknownTag {
        /// Offset of the blob.
        offset: u64,
        /// Its tag.
        tag: u64,
    },
    /// The first blob is not ECREATE, or ECREATE appears twice.
    #[error("SGXS blob at byte {offset}: ECREATE must come exactly once, first")]
    MisplacedEcreate {
        /// Offset of the offending blob.
        offset: u64,
    },
    /// The stream is UNSIZED: its enclave size is not known, so it cannot be hashed.
    #[error("SGXS stream is UNSIZED (enclave size unknown), it cannot be hashed")]
    Unsized,
    /// Bytes that must be zero are not.
    #[error("SGXS blob at byte {offset} has non-zero reserved bytes")]
    NonZeroReserved {
        /// Offset of the blob.
        offset: u64,
    },
}

/// What was measured from an SGXS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgxsMeasurement {
    /// MRENCLAVE (the stream's hash).
    pub mrenclave: [u8; 32],
    /// SECS.SIZE from ECREATE.
    pub size: u64,
    /// SECS.SSAFRAMESIZE (pages) from ECREATE.
    pub ssa_frame_size: u32,
    /// EADD blobs.
    pub eadd_count: u64,
    /// EEXTEND blobs (UNMEASRD not counted).
    pub eextend_count: u64,
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the first byte.
fn read_blob<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<bool, SgxsError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(SgxsError::Truncated { offset }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(SgxsError::Io { offset, source }),
        }
    }
    Ok(true)
}

fn u64_at(blob: &[u8; 64], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&blob[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Hashes an SGXS stream: MRENCLAVE plus the ECREATE values and record counts.
pub fn measure_sgxs<R: Read>(mut r: R) -> Result<SgxsMeasurement, SgxsError> {
    let mut m = Measurer::new();
    let mut blob = [0u8; 64];
    let mut data = [0u8; CHUNK_SIZE];
    let mut offset = 0u64;
    let mut ecreate: Option<(u32, u64)> = None;
    while read_blob(&mut r, &mut blob, offset)? {
        let tag = u64_at(&blob, 0);
        match tag {
            TAG_ECREATE | TAG_UNSIZED => {
                if ecreate.is_some() || offset != 0 {
                    return Err(SgxsError::MisplacedEcreate { offset });
                }
                if tag == TAG_UNSIZED {
                    return Err(SgxsError::Unsized);
                }
                let mut ssa = [0u8; 4];
                ssa.copy_from_slice(&blob[8..12]);
                let ssa = u32::from_le_bytes(ssa);
                let mut size = [0u8; 8];
                size.copy_from_slice(&blob[12..20]);
                let size = u64::from_le_bytes(size);
                if blob != ecreate_record(ssa, size) {
                    return Err(SgxsError::NonZeroReserved { offset });
                }
                m.ecreate(ssa, size);
                ecreate = Some((ssa, size));
            }
            TAG_EADD | TAG_EEXTEND | TAG_UNMEASRD => {
                if ecreate.is_none() {
                    return Err(SgxsError::MisplacedEcreate { offset });
                }
                let at = u64_at(&blob, 8);
                if tag == TAG_EADD {
                    let flags = u64_at(&blob, 16);
                    if blob != eadd_record(at, flags) {
                        return Err(SgxsError::NonZeroReserved { offset });
                    }
                    m.eadd(at, flags);
                } else {
                    if blob[16..] != eextend_record(at)[16..] {
                        return Err(SgxsError::NonZeroReserved { offset });
                    }
                    if !read_blob(&mut r, &mut data, offset)? {
                        return Err(SgxsError::Truncated { offset });
                    }
                    if tag == TAG_EEXTEND {
                        m.eextend(at, &data);
                    }
                    offset += CHUNK_SIZE as u64;
                }
            }
            _ => return Err(SgxsError::UnknownTag { offset, tag }),
        }
        offset += 64;
    }
    let (ssa_frame_size, size) = ecreate.ok_or(SgxsError::Empty)?;
    let (eadd_count, eextend_count) = (m.eadd_count(), m.eextend_count());
    Ok(SgxsMeasurement {
        mrenclave: m.finish(),
        size,
        ssa_frame_size,
        eadd_count,
        eextend_count,
    })
}

/// A [`RecordSink`] that writes an SGXS stream; the first write error is kept.
struct SgxsWriter<W: Write> {
    w: W,
    err: Option<io::Error>,
}

impl<W: Write> SgxsWriter<W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.err.is_none() {
            if let Err(e) = self.w.write_all(bytes) {
                self.err = Some(e);
            }
        }
    }
}

impl<W: Write> RecordSink for SgxsWriter<W> {
    fn ecreate(&mut self, ssa_frame_size: u32, size: u64) {
        self.put(&ecreate_record(ssa_frame_size, size));
    }

    fn eadd(&mut self, offset: u64, flags: u64) {
        self.put(&eadd_record(offset, flags));
    }

    fn eextend(&mut self, offset: u64, chunk: &[u8; CHUNK_SIZE]) {
        self.put(&eextend_record(offset));
        self.put(chunk);
    }

    fn eadd_run(&mut self, offset: u64, pages: u64, flags: u64) {
        for i in 0..pages {
            if self.err.is_some() {
                return;
            }
            self.eadd(offset + i * PAGE_SIZE, flags);
        }
    }
}

/// Writes `layout` as an SGXS stream, in the layout's (measurement) order. Its hash
/// equals the layout's MRENCLAVE. Pass a buffered writer for speed.
pub fn write_sgxs<W: Write>(layout: &EnclaveLayout, w: W) -> io::Result<()> {
    let mut sink = SgxsWriter { w, err: None };
    layout.emit(&mut sink);
    match sink.err {
        Some(e) => Err(e),
        None => sink.w.flush(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgx::measure::PageRun;

    #[test]
    fn round_trip_layout_through_sgxs() {
        let mut l = EnclaveLayout::new(0x40000, 2).unwrap();
        l.push(PageRun::bytes(0x3000, 0x205, vec![9; 5000]))
            .unwrap();
        l.push(PageRun::eadd_only(0x10000, 3, 0x207)).unwrap();
        l.push(PageRun::zero(0x0, 1, 0x203, 0x00ff)).unwrap();
        let mut out = Vec::new();
        write_sgxs(&l, &mut out).unwrap();
        let got = measure_sgxs(out.as_slice()).unwrap();
        let want = l.measure();
        assert_eq!(got.mrenclave, want.mrenclave);
        assert_eq!(got.eadd_count, 6);
        assert_eq!(got.eextend_count, 32 + 8);
        assert_eq!((got.size, got.ssa_frame_size), (0x40000, 2));
    }

    #[test]
    fn unmeasured_is_skipped() {
        let mut s = ecreate_record(1, 0x4000).to_vec();
        s.extend_from_slice(&eadd_record(0, 0x203));
        let mut um = eextend_record(0);
        um[0..8].copy_from_slice(&TAG_UNMEASRD.to_le_bytes());
        s.extend_from_slice(&um);
        s.extend_from_slice(&[5; 256]);
        let got = measure_sgxs(s.as_slice()).unwrap();
        let mut m = Measurer::new();
        m.ecreate(1, 0x4000);
        m.eadd(0, 0x203);
        assert_eq!(got.mrenclave, m.finish());
        assert_eq!(got.eextend_count, 0);
    }

    #[test]
    fn errors() {
        assert!(matches!(measure_sgxs(&[][..]), Err(SgxsError::Empty)));
        let e = ecreate_record(1, 0x4000);
        assert!(matches!(
            measure_sgxs(&e[..10]),
            Err(SgxsError::Truncated { offset: 0 })
        ));
        let mut u = e;
        u[0..8].copy_from_slice(&TAG_UNSIZED.to_le_bytes());
        assert!(matches!(measure_sgxs(&u[..]), Err(SgxsError::Unsized)));
        let mut twice = e.to_vec();
        twice.extend_from_slice(&e);
        assert!(matches!(
            measure_sgxs(twice.as_slice()),
            Err(SgxsError::MisplacedEcreate { offset: 64 })
        ));
        assert!(matches!(
            measure_sgxs(&eadd_record(0, 0x203)[..]),
            Err(SgxsError::MisplacedEcreate { offset: 0 })
        ));
        let mut bad = e.to_vec();
        bad.extend_from_slice(&[0xAB; 64]);
        assert!(matches!(
            measure_sgxs(bad.as_slice()),
            Err(SgxsError::UnknownTag { offset: 64, .. })
        ));
        let mut cut = e.to_vec();
        cut.extend_from_slice(&eextend_record(0));
        cut.extend_from_slice(&[0; 100]);
        assert!(matches!(
            measure_sgxs(cut.as_slice()),
            Err(SgxsError::Truncated { offset: 64 })
        ));
        let mut junk = e;
        junk[40] = 1;
        assert!(matches!(
            measure_sgxs(&junk[..]),
            Err(SgxsError::NonZeroReserved { offset: 0 })
        ));
    }
}

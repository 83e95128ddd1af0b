//! The streamed MRENCLAVE hasher.
//!
//! MRENCLAVE is SHA-256 over 64-byte ECREATE, EADD and EEXTEND records (EEXTEND followed
//! by its 256 data bytes), in the order the loader issued them. Two levels are offered:
//!
//! - [`Measurer`]: the raw record hasher (ecreate / eadd / eextend / finish).
//! - [`EnclaveLayout`]: a validated list of [`PageRun`]s whose content is given bytes,
//!   zeros or generated, which [`EnclaveLayout::measure`]s. A run of zero or EADD-only
//!   pages is one record in the layout, never a buffer per page.
//!
//! Records are batched into a 64 KiB buffer before each `Sha256::update`, which keeps
//! the per-call overhead low (this matters most in wasm).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Size of an enclave page in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// Size of one EEXTEND chunk in bytes.
pub const CHUNK_SIZE: usize = 256;
/// Number of EEXTEND chunks in a page.
pub const CHUNKS_PER_PAGE: usize = 16;
/// Chunk mask that EEXTENDs every chunk of a page.
pub const ALL_CHUNKS: u16 = 0xffff;

/// SECINFO.FLAGS bits and page types.
pub mod secinfo {
    /// Readable.
    pub const R: u64 = 0x1;
    /// Writable.
    pub const W: u64 = 0x2;
    /// Executable.
    pub const X: u64 = 0x4;
    /// Page type TCS (bits 8-15 = 1).
    pub const PT_TCS: u64 = 0x100;
    /// Page type REG (bits 8-15 = 2).
    pub const PT_REG: u64 = 0x200;
    /// Mask of the page-type field.
    pub const PAGE_TYPE_MASK: u64 = 0xff00;
}

/// Record tag of ECREATE ("ECREATE\0").
pub const TAG_ECREATE: u64 = 0x0045_5441_4552_4345;
/// Record tag of EADD ("EADD").
pub const TAG_EADD: u64 = 0x0000_0000_4444_4145;
/// Record tag of EEXTEND ("EEXTEND\0").
pub const TAG_EEXTEND: u64 = 0x0044_4E45_5458_4545;

/// Size of the hashing batch buffer.
const BATCH: usize = 64 * 1024;

static ZERO_CHUNK: [u8; CHUNK_SIZE] = [0; CHUNK_SIZE];

/// Builds the 64-byte ECREATE record.
pub fn ecreate_record(ssa_frame_size: u32, size: u64) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[0..8].copy_from_slice(&TAG_ECREATE.to_le_bytes());
    r[8..12].copy_from_slice(&ssa_frame_size.to_le_bytes());
    r[12..20].copy_from_slice(&size.to_le_bytes());
    r
}

/// Builds the 64-byte EADD record.
pub fn eadd_record(offset: u64, flags: u64) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[0..8].copy_from_slice(&TAG_EADD.to_le_bytes());
    r[8..16].copy_from_slice(&offset.to_le_bytes());
    r[16..24].copy_from_slice(&flags.to_le_bytes());
    r
}

/// Builds the 64-byte EEXTEND header (the 256 data bytes follow it).
pub fn eextend_record(offset: u64) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[0..8].copy_from_slice(&TAG_EEXTEND.to_le_bytes());
    r[8..16].copy_from_slice(&offset.to_le_bytes());
    r
}

/// Something that consumes measurement records in order: the [`Measurer`], or an SGXS
/// writer.
pub trait RecordSink {
    /// ECREATE with the SSA frame size (in pages) and the enclave size (in bytes).
    fn ecreate(&mut self, ssa_frame_size: u32, size: u64);
    /// EADD of the page at `offset` with SECINFO `flags`.
    fn eadd(&mut self, offset: u64, flags: u64);
    /// EEXTEND of the 256-byte chunk at `offset`.
    fn eextend(&mut self, offset: u64, chunk: &[u8; CHUNK_SIZE]);
    /// EADD of `pages` consecutive pages from `offset`, none of them EEXTENDed.
    fn eadd_run(&mut self, offset: u64, pages: u64, flags: u64) {
        for i in 0..pages {
            self.eadd(offset + i * PAGE_SIZE, flags);
        }
    }
}

/// The low-level MRENCLAVE hasher: feed records, then [`Measurer::finish`].
///
/// It does not check the order of records (an SGXS stream or a layout does that).
pub struct Measurer {
    hasher: Sha256,
    buf: Vec<u8>,
    eadd_count: u64,
    eextend_count: u64,
}

impl Default for Measurer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Measurer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Measurer")
            .field("eadd_count", &self.eadd_count)
            .field("eextend_count", &self.eextend_count)
            .finish_non_exhaustive()
    }
}

impl Measurer {
    /// A fresh hasher with no records.
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            buf: Vec::with_capacity(BATCH),
            eadd_count: 0,
            eextend_count: 0,
        }
    }

    /// Number of EADD records hashed so far.
    pub fn eadd_count(&self) -> u64 {
        self.eadd_count
    }

    /// Number of EEXTEND records hashed so far.
    pub fn eextend_count(&self) -> u64 {
        self.eextend_count
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > BATCH {
            self.flush();
        }
        self.buf.extend_from_slice(bytes);
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf);
        self.buf.clear();
    }

    /// The final MRENCLAVE.
    pub fn finish(mut self) -> [u8; 32] {
        self.flush();
        self.hasher.finalize().into()
    }
}

impl RecordSink for Measurer {
    fn ecreate(&mut self, ssa_frame_size: u32, size: u64) {
        self.push(&ecreate_record(ssa_frame_size, size));
    }

    fn eadd(&mut self, offset: u64, flags: u64) {
        self.eadd_count += 1;
        self.push(&eadd_record(offset, flags));
    }

    fn eextend(&mut self, offset: u64, chunk: &[u8; CHUNK_SIZE]) {
        self.eextend_count += 1;
        self.push(&eextend_record(offset));
        self.push(chunk);
    }

    fn eadd_run(&mut self, offset: u64, pages: u64, flags: u64) {
        // One template record; only the offset changes from page to page.
        let mut record = eadd_record(offset, flags);
        let mut page_offset = offset;
        let mut left = pages;
        // Top up the batch in progress.
        while left > 0 && self.buf.len() + 64 <= BATCH {
            record[8..16].copy_from_slice(&page_offset.to_le_bytes());
            self.buf.extend_from_slice(&record);
            page_offset = page_offset.wrapping_add(PAGE_SIZE);
            left -= 1;
        }
        if left > 0 {
            self.flush();
        }
        // Whole batches: fill the buffer with templates once, then rewrite only the
        // offsets (8 of every 64 bytes) before each update.
        const PER_BATCH: u64 = (BATCH / 64) as u64;
        if left >= PER_BATCH {
            self.buf.clear();
            for _ in 0..PER_BATCH {
                self.buf.extend_from_slice(&record);
            }
            while left >= PER_BATCH {
                for rec in self.buf.chunks_exact_mut(64) {
                    rec[8..16].copy_from_slice(&page_offset.to_le_bytes());
                    page_offset = page_offset.wrapping_add(PAGE_SIZE);
                }
                self.hasher.update(&self.buf);
                left -= PER_BATCH;
            }
            self.buf.clear();
        }
        // The rest starts a new batch.
        for _ in 0..left {
            record[8..16].copy_from_slice(&page_offset.to_le_bytes());
            self.buf.extend_from_slice(&record);
            page_offset = page_offset.wrapping_add(PAGE_SIZE);
        }
        self.eadd_count += pages;
    }
}

/// Produces the contents of generated pages on demand.
pub trait PageGenerator: fmt::Debug + Send + Sync {
    /// Writes page `index` (counted from the start of its run) into `page`, which is
    /// zeroed beforehand.
    fn fill(&self, index: u64, page: &mut [u8; PAGE_SIZE as usize]);
}

/// What a [`PageRun`]'s pages contain.
#[derive(Debug, Clone)]
pub enum PageContent {
    /// All zero.
    Zero,
    /// These bytes from the start of the run, then zeros up to the run's end.
    Bytes(Vec<u8>),
    /// Computed page by page.
    Generated(Arc<dyn PageGenerator>),
}

/// Consecutive pages with the same SECINFO flags and chunk mask.
#[derive(Debug, Clone)]
pub struct PageRun {
    /// Offset of the first page from the enclave base (page-aligned).
    pub offset: u64,
    /// Number of pages (at least 1).
    pub pages: u64,
    /// SECINFO.FLAGS. A TCS page is always measured as exactly `0x100`.
    pub flags: u64,
    /// Bit `i` set: chunk `i` (bytes `256*i..256*(i+1)`) of every page is EEXTENDed.
    pub chunks: u16,
    /// The pages' contents.
    pub content: PageContent,
}

impl PageRun {
    /// A run of zero pages, EEXTENDed per `chunks`.
    pub fn zero(offset: u64, pages: u64, flags: u64, chunks: u16) -> Self {
        Self {
            offset,
            pages,
            flags,
            chunks,
            content: PageContent::Zero,
        }
    }

    /// A run of EADD-only pages (such as the SGX1 heap).
    pub fn eadd_only(offset: u64, pages: u64, flags: u64) -> Self {
        Self::zero(offset, pages, flags, 0)
    }

    /// A run holding `bytes` (zero padded to whole pages), every chunk EEXTENDed.
    pub fn bytes(offset: u64, flags: u64, bytes: Vec<u8>) -> Self {
        let pages = (bytes.len() as u64).div_ceil(PAGE_SIZE).max(1);
        Self {
            offset,
            pages,
            flags,
            chunks: ALL_CHUNKS,
            content: PageContent::Bytes(bytes),
        }
    }

    /// The flags as measured: TCS pages lose every bit but the page type.
    pub fn measured_flags(&self) -> u64 {
        if self.flags & secinfo::PAGE_TYPE_MASK == secinfo::PT_TCS {
            secinfo::PT_TCS
        } else {
            self.flags
        }
    }

    fn is_tcs(&self) -> bool {
        self.flags & secinfo::PAGE_TYPE_MASK == secinfo::PT_TCS
    }

    fn byte_len(&self) -> Option<u64> {
        self.pages.checked_mul(PAGE_SIZE)
    }
}

/// Why a layout is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeasureError {
    /// SECS.SIZE must be a power of two (at least one page).
    #[error("enclave size {0:#x} is not a power of two of at least 4096 bytes")]
    SizeNotPowerOfTwo(u64),
    /// The SSA frame size must be at least one page.
    #[error("SSA frame size must be at least 1 page")]
    ZeroSsaFrameSize,
    /// A run's offset is not page-aligned.
    #[error("page run at offset {0:#x} is not page-aligned")]
    Unaligned(u64),
    /// A run has no pages.
    #[error("page run at offset {0:#x} has no pages")]
    EmptyRun(u64),
    /// A run reaches past the enclave's end.
    #[error(
        "page run at offset {offset:#x} ({pages} pages) ends outside the enclave of size {size:#x}"
    )]
    OutsideEnclave {
        /// Offset of the run.
        offset: u64,
        /// Pages in the run.
        pages: u64,
        /// Enclave size.
        size: u64,
    },
    /// Given bytes are longer than the run.
    #[error("page run at offset {offset:#x} holds {len} bytes, more than its {pages} pages")]
    ContentTooLong {
        /// Offset of the run.
        offset: u64,
        /// Length of the bytes.
        len: u64,
        /// Pages in the run.
        pages: u64,
    },
    /// Two runs share a page.
    #[error("page run at offset {offset:#x} overlaps the run at {other:#x}")]
    Overlap {
        /// Offset of the new run.
        offset: u64,
        /// Offset of the run already present.
        other: u64,
    },
}

/// The result of measuring a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// EADD records hashed.
    pub eadd_count: u64,
    /// EEXTEND records hashed.
    pub eextend_count: u64,
}

/// An enclave: ECREATE parameters, then page runs in the order the loader adds them.
#[derive(Debug, Clone)]
pub struct EnclaveLayout {
    size: u64,
    ssa_frame_size: u32,
    runs: Vec<PageRun>,
    /// Occupied byte ranges, start -> end (exclusive), for the overlap check.
    occupied: BTreeMap<u64, u64>,
}

impl EnclaveLayout {
    /// An empty enclave of `size` bytes (a power of two) with SSA frames of
    /// `ssa_frame_size` pages.
    pub fn new(size: u64, ssa_frame_size: u32) -> Result<Self, MeasureError> {
        if !size.is_power_of_two() || size < PAGE_SIZE {
            return Err(MeasureError::SizeNotPowerOfTwo(size));
        }
        if ssa_frame_size == 0 {
            return Err(MeasureError::ZeroSsaFrameSize);
        }
        Ok(Self {
            size,
            ssa_frame_size,
            runs: Vec::new(),
            occupied: BTreeMap::new(),
        })
    }

    /// SECS.SIZE.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// SECS.SSAFRAMESIZE in pages.
    pub fn ssa_frame_size(&self) -> u32 {
        self.ssa_frame_size
    }

    /// The runs, in measurement order.
    pub fn runs(&self) -> &[PageRun] {
        &self.runs
    }

    /// Appends a run after checking alignment, bounds, content length and overlap.
    pub fn push(&mut self, run: PageRun) -> Result<(), MeasureError> {
        let offset = run.offset;
        if !offset.is_multiple_of(PAGE_SIZE) {
            return Err(MeasureError::Unaligned(offset));
        }
        if run.pages == 0 {
            return Err(MeasureError::EmptyRun(offset));
        }
        let outside = MeasureError::OutsideEnclave {
            offset,
            pages: run.pages,
            size: self.size,
        };
        let len = run.byte_len().ok_or_else(|| outside.clone())?;
        let end = offset.checked_add(len).ok_or_else(|| outside.clone())?;
        if end > self.size {
            return Err(outside);
        }
        if let PageContent::Bytes(b) = &run.content {
            if b.len() as u64 > len {
                return Err(MeasureError::ContentTooLong {
                    offset,
                    len: b.len() as u64,
                    pages: run.pages,
                });
            }
        }
        // The nearest run starting at or before `end - 1` is the only candidate.
        if let Some((&start, &stop)) = self.occupied.range(..end).next_back() {
            if stop > offset {
                return Err(MeasureError::Overlap {
                    offset,
                    other: start,
                });
            }
        }
        self.occupied.insert(offset, end);
        self.runs.push(run);
        Ok(())
    }

    /// Number of EADD records the layout produces.
    pub fn eadd_count(&self) -> u64 {
        self.runs.iter().map(|r| r.pages).sum()
    }

    /// Number of EEXTEND records the layout produces.
    pub fn eextend_count(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.pages * u64::from(r.chunks.count_ones()))
            .sum()
    }

    /// Feeds ECREATE and every run's records to `sink`.
    pub fn emit<S: RecordSink + ?Sized>(&self, sink: &mut S) {
        sink.ecreate(self.ssa_frame_size, self.size);
        for run in &self.runs {
            emit_run(run, sink);
        }
    }

    /// Computes MRENCLAVE.
    pub fn measure(&self) -> Measurement {
        let mut m = Measurer::new();
        self.emit(&mut m);
        let (eadd_count, eextend_count) = (m.eadd_count(), m.eextend_count());
        Measurement {
            mrenclave: m.finish(),
            eadd_count,
            eextend_count,
        }
    }
}

/// Zeroes the TCS fields that EADD clears in the EPC copy: STATE, FLAGS.DBGOPTIN, CSSA
/// and AEP.
pub fn zero_tcs_fields(page: &mut [u8; PAGE_SIZE as usize]) {
    page[0..8].fill(0);
    page[8] &= !1;
    page[24..28].fill(0);
    page[40..48].fill(0);
}

fn emit_run<S: RecordSink + ?Sized>(run: &PageRun, sink: &mut S) {
    let flags = run.measured_flags();
    if run.chunks == 0 {
        sink.eadd_run(run.offset, run.pages, flags);
        return;
    }
    let mut page = [0u8; PAGE_SIZE as usize];
    for i in 0..run.pages {
        let offset = run.offset + i * PAGE_SIZE;
        sink.eadd(offset, flags);
        let has_data = match &run.content {
            PageContent::Zero => false,
            PageContent::Bytes(bytes) => {
                let start = (i * PAGE_SIZE) as usize;
                match bytes.get(start..) {
                    Some(rest) if !rest.is_empty() => {
                        let n = rest.len().min(PAGE_SIZE as usize);
                        page.fill(0);
                        page[..n].copy_from_slice(&rest[..n]);
                        true
                    }
                    _ => false,
                }
            }
            PageContent::Generated(generator) => {
                page.fill(0);
                generator.fill(i, &mut page);
                true
            }
        };
        if has_data && run.is_tcs() {
            zero_tcs_fields(&mut page);
        }
        let data = has_data.then_some(&page);
        for c in 0..CHUNKS_PER_PAGE {
            if run.chunks & (1 << c) == 0 {
                continue;
            }
            let chunk_offset = offset + (c * CHUNK_SIZE) as u64;
            let chunk: &[u8; CHUNK_SIZE] = match data {
                Some(p) => chunk_of(p, c),
                None => &ZERO_CHUNK,
            };
            sink.eextend(chunk_offset, chunk);
        }
    }
}

fn chunk_of(page: &[u8; PAGE_SIZE as usize], c: usize) -> &[u8; CHUNK_SIZE] {
    let mut chunks = page.chunks_exact(CHUNK_SIZE);
    // `c < 16` and a page has exactly 16 chunks, so this always succeeds.
    match chunks
        .nth(c)
        .and_then(|s| <&[u8; CHUNK_SIZE]>::try_from(s).ok())
    {
        Some(chunk) => chunk,
        None => &ZERO_CHUNK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(records: &[Vec<u8>]) -> [u8; 32] {
        let mut h = Sha256::new();
        for r in records {
            h.update(r);
        }
        h.finalize().into()
    }

    #[test]
    fn measurer_matches_plain_sha256_of_records() {
        let mut m = Measurer::new();
        m.ecreate(1, 0x4000);
        m.eadd(0x1000, 0x203);
        let chunk = [7u8; CHUNK_SIZE];
        m.eextend(0x1000, &chunk);
        m.eadd_run(0x2000, 3, 0x207);
        assert_eq!(m.eadd_count(), 4);
        assert_eq!(m.eextend_count(), 1);
        let mut recs = vec![
            ecreate_record(1, 0x4000).to_vec(),
            eadd_record(0x1000, 0x203).to_vec(),
            eextend_record(0x1000).to_vec(),
            chunk.to_vec(),
        ];
        for i in 0..3 {
            recs.push(eadd_record(0x2000 + i * 0x1000, 0x207).to_vec());
        }
        assert_eq!(m.finish(), reference(&recs));
    }

    #[test]
    fn batches_larger_than_buffer_hash_the_same() {
        let mut m = Measurer::new();
        m.ecreate(1, 1 << 30);
        m.eadd_run(0, 5000, 0x207);
        m.eextend(0, &[3; CHUNK_SIZE]);
        m.eadd_run(5000 * PAGE_SIZE, 3000, 0x203);
        m.eadd_run(8000 * PAGE_SIZE, 1023, 0x203);
        let mut h = Sha256::new();
        h.update(ecreate_record(1, 1 << 30));
        for i in 0..5000u64 {
            h.update(eadd_record(i * PAGE_SIZE, 0x207));
        }
        h.update(eextend_record(0));
        h.update([3; CHUNK_SIZE]);
        for i in 5000..8000u64 {
            h.update(eadd_record(i * PAGE_SIZE, 0x203));
        }
        for i in 8000..9023u64 {
            h.update(eadd_record(i * PAGE_SIZE, 0x203));
        }
        assert_eq!(m.finish(), <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn record_layouts() {
        let r = ecreate_record(4, 0x200000);
        assert_eq!(&r[0..8], b"ECREATE\0");
        assert_eq!(&r[8..12], &4u32.to_le_bytes());
        assert_eq!(&r[12..20], &0x200000u64.to_le_bytes());
        assert_eq!(&eadd_record(0, 0)[0..8], b"EADD\0\0\0\0");
        assert_eq!(&eextend_record(0)[0..8], b"EEXTEND\0");
    }

    #[test]
    fn tcs_flags_and_fields_are_normalised() {
        let mut tcs = vec![0xffu8; 4096];
        tcs[16] = 1;
        let mut layout = EnclaveLayout::new(0x10000, 1).unwrap();
        layout.push(PageRun::bytes(0, 0x107, tcs.clone())).unwrap();
        let mut expect = EnclaveLayout::new(0x10000, 1).unwrap();
        let mut clean: [u8; 4096] = tcs.try_into().unwrap();
        zero_tcs_fields(&mut clean);
        assert_eq!(clean[8], 0xfe);
        expect
            .push(PageRun::bytes(0, 0x100, clean.to_vec()))
            .unwrap();
        assert_eq!(layout.measure(), expect.measure());
    }

    #[test]
    fn layout_validation() {
        assert_eq!(
            EnclaveLayout::new(0x3000, 1).unwrap_err(),
            MeasureError::SizeNotPowerOfTwo(0x3000)
        );
        assert_eq!(
            EnclaveLayout::new(0x4000, 0).unwrap_err(),
            MeasureError::ZeroSsaFrameSize
        );
        let mut l = EnclaveLayout::new(0x10000, 1).unwrap();
        assert_eq!(
            l.push(PageRun::eadd_only(0x10, 1, 0x203)).unwrap_err(),
            MeasureError::Unaligned(0x10)
        );
        assert_eq!(
            l.push(PageRun::eadd_only(0, 0, 0x203)).unwrap_err(),
            MeasureError::EmptyRun(0)
        );
        assert!(matches!(
            l.push(PageRun::eadd_only(0xf000, 2, 0x203)),
            Err(MeasureError::OutsideEnclave { .. })
        ));
        assert!(matches!(
            l.push(PageRun::eadd_only(0x1000, u64::MAX / 2, 0x203)),
            Err(MeasureError::OutsideEnclave { .. })
        ));
        l.push(PageRun::eadd_only(0x4000, 2, 0x203)).unwrap();
        assert_eq!(
            l.push(PageRun::eadd_only(0x5000, 1, 0x203)).unwrap_err(),
            MeasureError::Overlap {
                offset: 0x5000,
                other: 0x4000
            }
        );
        assert_eq!(
            l.push(PageRun::eadd_only(0x2000, 3, 0x203)).unwrap_err(),
            MeasureError::Overlap {
                offset: 0x2000,
                other: 0x4000
            }
        );
        l.push(PageRun::eadd_only(0x6000, 1, 0x203)).unwrap();
        l.push(PageRun::eadd_only(0x2000, 2, 0x203)).unwrap();
        let mut run = PageRun::bytes(0x8000, 0x203, vec![1; 10]);
        run.pages = 1;
        run.content = PageContent::Bytes(vec![1; 4097]);
        assert!(matches!(
            l.push(run),
            Err(MeasureError::ContentTooLong { .. })
        ));
        assert_eq!(l.eadd_count(), 5);
    }

    #[derive(Debug)]
    struct Counter;
    impl PageGenerator for Counter {
        fn fill(&self, index: u64, page: &mut [u8; 4096]) {
            page[0] = index as u8 + 1;
        }
    }

    #[test]
    fn generated_equals_bytes() {
        let mut a = EnclaveLayout::new(0x10000, 1).unwrap();
        a.push(PageRun {
            offset: 0x1000,
            pages: 2,
            flags: 0x203,
            chunks: 0x8001,
            content: PageContent::Generated(Arc::new(Counter)),
        })
        .unwrap();
        let mut bytes = vec![0u8; 8192];
        bytes[0] = 1;
        bytes[4096] = 2;
        let mut b = EnclaveLayout::new(0x10000, 1).unwrap();
        let mut run = PageRun::bytes(0x1000, 0x203, bytes);
        run.chunks = 0x8001;
        b.push(run).unwrap();
        assert_eq!(a.measure(), b.measure());
        assert_eq!(a.measure().eextend_count, 4);
        assert_eq!(a.eextend_count(), 4);
    }
}

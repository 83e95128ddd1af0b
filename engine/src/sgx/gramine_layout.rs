//! Gramine v1.9's enclave layout, as `sgx_sign.py` lays it out.
//!
//! Areas are listed as manifest, SSA, TCS, TLS, stacks, signal stacks, libpal, and placed
//! downward from the enclave's top (so the manifest is highest and libpal lowest). Without
//! EDMM the heap `[0x10000, libpal base)` follows as EADD-only pages with flags `0x207`.
//! Records are emitted in that list order, not in address order.

use std::sync::Arc;

use super::elf::{self, ElfError, ElfInfo, PF_R, PF_W, PF_X};
use super::manifest_params::{ManifestParamsError, SgxManifestParams};
use super::measure::{
    secinfo, EnclaveLayout, MeasureError, PageContent, PageGenerator, PageRun, ALL_CHUNKS,
    PAGE_SIZE,
};

/// SSA frame size in pages (SECS.SSAFRAMESIZE).
pub const SSA_FRAME_PAGES: u32 = 4;
/// SSA frames per thread.
pub const SSA_FRAME_NUM: u64 = 2;
/// Stack size per thread.
pub const ENCLAVE_STACK_SIZE: u64 = 64 * PAGE_SIZE;
/// Signal stack size per thread.
pub const ENCLAVE_SIG_STACK_SIZE: u64 = 16 * PAGE_SIZE;
/// Lowest address Gramine adds (MMAP_MIN_ADDR, the heap's start).
pub const HEAP_MIN: u64 = 0x10000;
/// Gramine's default stack protector canary.
pub const STACK_PROTECTOR_CANARY: u64 = 0xbad_bad_bad_bad;
/// Size of the GPR save area at the end of an SSA frame.
pub const SGX_GPR_SIZE: u64 = 184;

const SSA_FRAME_SIZE: u64 = SSA_FRAME_PAGES as u64 * PAGE_SIZE;
const SSA_PER_THREAD: u64 = SSA_FRAME_SIZE * SSA_FRAME_NUM;
const RW: u64 = secinfo::PT_REG | secinfo::R | secinfo::W;

/// Why a Gramine layout cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The manifest's `sgx.*` settings are invalid.
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestParamsError),
    /// libpal.so is not a usable ELF.
    #[error("libpal.so: {0}")]
    Elf(#[from] ElfError),
    /// libpal's lowest PT_LOAD is not at 0, so Gramine would load it at a fixed address.
    #[error(
        "libpal.so: lowest PT_LOAD page is {0:#x}, not 0 (fixed-address libpal is unsupported)"
    )]
    PalNotAtZero(u64),
    /// `sgx.max_threads` is 0.
    #[error("sgx.max_threads is 0: an enclave needs at least one thread")]
    NoThreads,
    /// The enclave size is not a power of two.
    #[error("sgx.enclave_size {0:#x} is not a power of two")]
    SizeNotPowerOfTwo(u64),
    /// The areas do not fit above 0x10000.
    #[error("sgx.enclave_size {size:#x} is too small: the layout needs {needed:#x} bytes above 0x10000 ({threads} threads, libpal {pal_size:#x} bytes)")]
    EnclaveTooSmall {
        /// Enclave size.
        size: u64,
        /// Bytes the areas need.
        needed: u64,
        /// Thread count.
        threads: u32,
        /// libpal's mapped size.
        pal_size: u64,
    },
    /// libpal's entry point overflows.
    #[error("libpal.so: entry point {0:#x} overflows when relocated")]
    EntryOverflow(u64),
    /// The generated layout failed a measurement check (a bug, reported rather than
    /// panicking).
    #[error("layout: {0}")]
    Measure(#[from] MeasureError),
}

/// Where an area was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// "manifest", "ssa", "tcs", "tls", "stack", "sig_stack", "pal" or "free".
    pub name: &'static str,
    /// Address (= offset, the enclave base is 0).
    pub addr: u64,
    /// Size in bytes (whole pages).
    pub size: u64,
}

/// A Gramine enclave layout: the placed areas and the measurable page runs.
#[derive(Debug, Clone)]
pub struct GramineLayout {
    /// The manifest's settings.
    pub params: SgxManifestParams,
    /// Areas in list order (the heap last, if any).
    pub areas: Vec<Area>,
    /// The runs to measure.
    pub layout: EnclaveLayout,
}

/// The result of [`measure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GramineMeasurement {
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// The manifest's settings.
    pub params: SgxManifestParams,
    /// EADD records.
    pub eadd_count: u64,
    /// EEXTEND records.
    pub eextend_count: u64,
}

/// Measures a final `.manifest.sgx` with its libpal.so.
pub fn measure(manifest: &[u8], libpal: &[u8]) -> Result<GramineMeasurement, LayoutError> {
    let params = SgxManifestParams::from_manifest(manifest)?;
    measure_with(manifest, &params, libpal)
}

/// [`measure`] for a manifest whose SGX settings are already known (read from the
/// table it was rendered from: [`crate::gramine::manifest::render_with_params`]).
pub fn measure_with(
    manifest: &[u8],
    params: &SgxManifestParams,
    libpal: &[u8],
) -> Result<GramineMeasurement, LayoutError> {
    let pal = elf::parse(libpal)?;
    let m = layout_with(manifest, params, &pal, libpal)?
        .layout
        .measure();
    Ok(GramineMeasurement {
        mrenclave: m.mrenclave,
        params: params.clone(),
        eadd_count: m.eadd_count,
        eextend_count: m.eextend_count,
    })
}

/// Builds the layout of a final `.manifest.sgx` with its libpal.so.
pub fn layout(manifest: &[u8], libpal: &[u8]) -> Result<GramineLayout, LayoutError> {
    let params = SgxManifestParams::from_manifest(manifest)?;
    let pal = elf::parse(libpal)?;
    layout_with(manifest, &params, &pal, libpal)
}

/// Addresses of the areas, computed by placing them downward from the top.
#[derive(Debug, Clone, Copy)]
struct Placement {
    threads: u64,
    manifest: u64,
    ssa: u64,
    tcs: u64,
    tls: u64,
    /// Bottom of the stacks block (stack[n-1]); stack[0] is highest.
    stacks: u64,
    /// Bottom of the signal stacks block.
    sig_stacks: u64,
    pal: u64,
}

impl Placement {
    fn stack(&self, t: u64) -> u64 {
        self.stacks + (self.threads - 1 - t) * ENCLAVE_STACK_SIZE
    }

    fn sig_stack(&self, t: u64) -> u64 {
        self.sig_stacks + (self.threads - 1 - t) * ENCLAVE_SIG_STACK_SIZE
    }

    fn ssa_of(&self, t: u64) -> u64 {
        self.ssa + t * SSA_PER_THREAD
    }
}

fn place(
    params: &SgxManifestParams,
    manifest_len: u64,
    pal_size: u64,
) -> Result<Placement, LayoutError> {
    let n = u64::from(params.max_threads);
    let size = params.enclave_size;
    let too_small = || {
        let per_thread =
            SSA_PER_THREAD + 2 * PAGE_SIZE + ENCLAVE_STACK_SIZE + ENCLAVE_SIG_STACK_SIZE;
        LayoutError::EnclaveTooSmall {
            size,
            needed: manifest_len
                .saturating_add(n.saturating_mul(per_thread))
                .saturating_add(pal_size),
            threads: params.max_threads,
            pal_size,
        }
    };
    // Addresses only decrease, so checking each block's bottom against 0x10000 is the
    // same as Gramine's check of every single area.
    let mut top = size;
    let mut down = |bytes: u64| -> Result<u64, LayoutError> {
        match top.checked_sub(bytes) {
            Some(addr) if addr >= HEAP_MIN => {
                top = addr;
                Ok(addr)
            }
            _ => Err(too_small()),
        }
    };
    // n < 2^32 and every per-thread size is < 2^19, so these products fit in u64.
    Ok(Placement {
        threads: n,
        manifest: down(manifest_len)?,
        ssa: down(n * SSA_PER_THREAD)?,
        tcs: down(n * PAGE_SIZE)?,
        tls: down(n * PAGE_SIZE)?,
        stacks: down(n * ENCLAVE_STACK_SIZE)?,
        sig_stacks: down(n * ENCLAVE_SIG_STACK_SIZE)?,
        pal: down(pal_size)?,
    })
}

fn put_u64(page: &mut [u8; PAGE_SIZE as usize], at: usize, v: u64) {
    page[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(page: &mut [u8; PAGE_SIZE as usize], at: usize, v: u32) {
    page[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// TCS page of thread `t` (spec §1 TCS table), generated on demand.
#[derive(Debug)]
struct TcsPages {
    p: Placement,
    entry: u64,
}

impl PageGenerator for TcsPages {
    fn fill(&self, t: u64, page: &mut [u8; PAGE_SIZE as usize]) {
        put_u64(page, 16, self.p.ssa_of(t)); // OSSA
        put_u32(page, 28, SSA_FRAME_NUM as u32); // NSSA
        put_u64(page, 32, self.entry); // OENTRY
        put_u64(page, 56, self.p.tls + t * PAGE_SIZE); // OGSBASGX
        put_u32(page, 64, 0xfff); // FSLIMIT
        put_u32(page, 68, 0xfff); // GSLIMIT
    }
}

/// TLS page (`struct pal_enclave_tcb`) of thread `t` (spec §4 TLS table).
#[derive(Debug)]
struct TlsPages {
    p: Placement,
    enclave_size: u64,
    manifest_len: u64,
}

impl PageGenerator for TlsPages {
    fn fill(&self, t: u64, page: &mut [u8; PAGE_SIZE as usize]) {
        let p = &self.p;
        let ssa = p.ssa_of(t);
        put_u64(page, 0, p.tls + t * PAGE_SIZE);
        put_u64(page, 8, STACK_PROTECTOR_CANARY);
        put_u64(page, 272, self.enclave_size);
        put_u64(page, 280, p.tcs + t * PAGE_SIZE);
        put_u64(page, 288, p.stack(t) + ENCLAVE_STACK_SIZE);
        put_u64(page, 304, p.sig_stack(t));
        put_u64(page, 312, p.sig_stack(t) + ENCLAVE_SIG_STACK_SIZE);
        put_u64(page, 328, ssa);
        put_u64(page, 336, ssa + SSA_FRAME_SIZE - SGX_GPR_SIZE);
        put_u64(page, 416, self.manifest_len);
        put_u64(page, 424, HEAP_MIN);
        put_u64(page, 432, p.pal);
    }
}

/// The pages of one PT_LOAD as `sgx_sign.py`'s `load_file` builds them: page `k` holds
/// the file window at `rounddown(p_offset) + k*4096`, with bytes outside
/// `[p_offset, p_offset + filesz)` zeroed. Returns the run: its page count and its
/// leading bytes (the rest, such as .bss, is zero and never allocated).
fn segment_pages(seg: &elf::LoadSegment, file: &[u8]) -> (u64, Vec<u8>) {
    let m_size = seg.page_end() - seg.page_start();
    let skip = seg.offset % PAGE_SIZE;
    let n = seg.filesz.min(m_size.saturating_sub(skip));
    let mut buf = vec![0u8; (skip + n) as usize];
    // The ELF reader checked offset + filesz <= file length.
    if let (Some(dst), Some(src)) = (
        buf.get_mut(skip as usize..),
        file.get(seg.offset as usize..(seg.offset + n) as usize),
    ) {
        dst.copy_from_slice(src);
    }
    (m_size / PAGE_SIZE, buf)
}

fn segment_flags(p_flags: u32) -> u64 {
    let mut f = secinfo::PT_REG;
    if p_flags & PF_R != 0 {
        f |= secinfo::R;
    }
    if p_flags & PF_W != 0 {
        f |= secinfo::W;
    }
    if p_flags & PF_X != 0 {
        f |= secinfo::X;
    }
    f
}

/// Builds the layout from already parsed parts (`libpal` is the ELF file's bytes).
pub fn layout_with(
    manifest: &[u8],
    params: &SgxManifestParams,
    pal: &ElfInfo,
    libpal: &[u8],
) -> Result<GramineLayout, LayoutError> {
    if params.max_threads == 0 {
        return Err(LayoutError::NoThreads);
    }
    if !params.enclave_size.is_power_of_two() {
        return Err(LayoutError::SizeNotPowerOfTwo(params.enclave_size));
    }
    if pal.map_start() != 0 {
        return Err(LayoutError::PalNotAtZero(pal.map_start()));
    }
    let n = u64::from(params.max_threads);
    let manifest_len = manifest.len() as u64 + 1; // NUL-terminated in memory
    let manifest_area = manifest_len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let pal_size = pal.map_end();
    let p = place(params, manifest_area, pal_size)?;
    let entry = p
        .pal
        .checked_add(pal.entry)
        .ok_or(LayoutError::EntryOverflow(pal.entry))?;

    let stacks: Vec<u64> = (0..n).map(|t| p.stack(t)).collect();
    let sig_stacks: Vec<u64> = (0..n).map(|t| p.sig_stack(t)).collect();
    let mut areas = vec![
        Area {
            name: "manifest",
            addr: p.manifest,
            size: manifest_area,
        },
        Area {
            name: "ssa",
            addr: p.ssa,
            size: n * SSA_PER_THREAD,
        },
        Area {
            name: "tcs",
            addr: p.tcs,
            size: n * PAGE_SIZE,
        },
        Area {
            name: "tls",
            addr: p.tls,
            size: n * PAGE_SIZE,
        },
    ];
    areas.extend(stacks.iter().map(|&addr| Area {
        name: "stack",
        addr,
        size: ENCLAVE_STACK_SIZE,
    }));
    areas.extend(sig_stacks.iter().map(|&addr| Area {
        name: "sig_stack",
        addr,
        size: ENCLAVE_SIG_STACK_SIZE,
    }));
    areas.push(Area {
        name: "pal",
        addr: p.pal,
        size: pal_size,
    });

    let mut l = EnclaveLayout::new(params.enclave_size, SSA_FRAME_PAGES)?;
    let mut manifest_bytes = manifest.to_vec();
    manifest_bytes.push(0);
    l.push(PageRun::bytes(
        p.manifest,
        secinfo::PT_REG | secinfo::R,
        manifest_bytes,
    ))?;
    l.push(PageRun::zero(
        p.ssa,
        n * SSA_PER_THREAD / PAGE_SIZE,
        RW,
        ALL_CHUNKS,
    ))?;
    l.push(PageRun {
        offset: p.tcs,
        pages: n,
        flags: secinfo::PT_TCS,
        chunks: ALL_CHUNKS,
        content: PageContent::Generated(Arc::new(TcsPages { p, entry })),
    })?;
    l.push(PageRun {
        offset: p.tls,
        pages: n,
        flags: RW,
        chunks: ALL_CHUNKS,
        content: PageContent::Generated(Arc::new(TlsPages {
            p,
            enclave_size: params.enclave_size,
            manifest_len,
        })),
    })?;
    for &addr in &stacks {
        l.push(PageRun::zero(
            addr,
            ENCLAVE_STACK_SIZE / PAGE_SIZE,
            RW,
            ALL_CHUNKS,
        ))?;
    }
    for &addr in &sig_stacks {
        l.push(PageRun::zero(
            addr,
            ENCLAVE_SIG_STACK_SIZE / PAGE_SIZE,
            RW,
            ALL_CHUNKS,
        ))?;
    }
    for seg in &pal.loads {
        let (pages, bytes) = segment_pages(seg, libpal);
        l.push(PageRun {
            offset: p.pal + seg.page_start(),
            pages,
            flags: segment_flags(seg.flags),
            chunks: ALL_CHUNKS,
            content: PageContent::Bytes(bytes),
        })?;
    }
    if !params.edmm_enable && p.pal > HEAP_MIN {
        let heap = p.pal - HEAP_MIN;
        let flags = secinfo::PT_REG | secinfo::R | secinfo::W | secinfo::X;
        l.push(PageRun::eadd_only(HEAP_MIN, heap / PAGE_SIZE, flags))?;
        areas.push(Area {
            name: "free",
            addr: HEAP_MIN,
            size: heap,
        });
    }
    Ok(GramineLayout {
        params: params.clone(),
        areas,
        layout: l,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &[u8] = include_bytes!("../../testdata/gramine/t1.manifest.sgx");
    const T2: &[u8] = include_bytes!("../../testdata/gramine/t2.manifest.sgx");
    const PAL: &[u8] = include_bytes!("../../testdata/gramine/libpal_test.so");

    #[test]
    fn t1_vector() {
        let m = measure(T1, PAL).unwrap();
        assert_eq!(
            hex::encode(m.mrenclave),
            "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b"
        );
        assert_eq!((m.eadd_count, m.eextend_count), (496, 2992));
    }

    #[test]
    fn t2_vector() {
        let m = measure(T2, PAL).unwrap();
        assert_eq!(
            hex::encode(m.mrenclave),
            "f3e636e9c4e2f36898cff29975b94299ac175fb72d84338ad090c7e44d516c18"
        );
        assert_eq!(m.eadd_count, 187);
    }

    #[test]
    fn t1_areas_match_the_spec_table() {
        let g = layout(T1, PAL).unwrap();
        let got: Vec<(&str, u64)> = g.areas.iter().map(|a| (a.name, a.addr)).collect();
        assert_eq!(
            got,
            vec![
                ("manifest", 0x1ff000),
                ("ssa", 0x1ef000),
                ("tcs", 0x1ed000),
                ("tls", 0x1eb000),
                ("stack", 0x1ab000),
                ("stack", 0x16b000),
                ("sig_stack", 0x15b000),
                ("sig_stack", 0x14b000),
                ("pal", 0x145000),
                ("free", 0x10000),
            ]
        );
        assert_eq!(g.areas[9].size / PAGE_SIZE, 309);
    }
}

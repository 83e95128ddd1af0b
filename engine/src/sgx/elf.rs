//! Reading the parts of a libpal.so ELF64 that the enclave layout needs: the entry
//! point, the type (Gramine's libpal is always PIE, `ET_DYN`) and the PT_LOAD segments.
//!
//! Only little-endian x86-64 is accepted. Segments must lie inside the file, have
//! `filesz <= memsz`, and must not share a page with one another (Gramine's behaviour
//! for shared pages is unverified, so such files are refused).

use super::measure::PAGE_SIZE;

/// `e_type` of a shared object / position-independent executable.
pub const ET_DYN: u16 = 3;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_flags` bit: executable.
pub const PF_X: u32 = 1;
/// `p_flags` bit: writable.
pub const PF_W: u32 = 2;
/// `p_flags` bit: readable.
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Why an ELF file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Shorter than what the headers need.
    #[error("ELF truncated: {what} needs bytes {start}..{end}, the file has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// First byte needed.
        start: u64,
        /// End (exclusive) of the bytes needed.
        end: u64,
        /// File length.
        len: u64,
    },
    /// The magic number is wrong.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// Not ELFCLASS64.
    #[error("ELF class {0} is not ELFCLASS64 (2)")]
    WrongClass(u8),
    /// Not little-endian.
    #[error("ELF data encoding {0} is not little-endian (1)")]
    WrongEndianness(u8),
    /// Not x86-64.
    #[error("ELF machine {0} is not x86-64 (62)")]
    WrongMachine(u16),
    /// Not PIE.
    #[error("ELF type {0} is not ET_DYN (3): Gramine's libpal.so is always position-independent")]
    NotPie(u16),
    /// `e_phentsize` is not 56.
    #[error("ELF program header size {0} is not 56")]
    BadPhentsize(u16),
    /// No PT_LOAD segment.
    #[error("ELF has no PT_LOAD segment")]
    NoLoadSegments,
    /// A PT_LOAD has `filesz > memsz`.
    #[error("PT_LOAD #{index}: filesz {filesz:#x} exceeds memsz {memsz:#x}")]
    FileszExceedsMemsz {
        /// Program header index.
        index: usize,
        /// p_filesz.
        filesz: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// A PT_LOAD's file bytes lie outside the file.
    #[error(
        "PT_LOAD #{index}: file bytes {offset:#x}+{filesz:#x} lie outside the {len}-byte file"
    )]
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// p_offset.
        offset: u64,
        /// p_filesz.
        filesz: u64,
        /// File length.
        len: u64,
    },
    /// A PT_LOAD has no memory.
    #[error("PT_LOAD #{index} has memsz 0")]
    EmptySegment {
        /// Program header index.
        index: usize,
    },
    /// A PT_LOAD's address range overflows.
    #[error("PT_LOAD #{index}: vaddr {vaddr:#x} + memsz {memsz:#x} overflows")]
    AddressOverflow {
        /// Program header index.
        index: usize,
        /// p_vaddr.
        vaddr: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// Two PT_LOADs overlap or share a page.
    #[error("PT_LOAD #{first} and #{second} overlap or share a page (unsupported: Gramine's handling of shared pages is unverified)")]
    OverlappingSegments {
        /// Earlier program header index.
        first: usize,
        /// Later program header index.
        second: usize,
    },
}

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Index of the program header.
    pub index: usize,
    /// p_offset.
    pub offset: u64,
    /// p_vaddr.
    pub vaddr: u64,
    /// p_filesz.
    pub filesz: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_flags (PF_R / PF_W / PF_X).
    pub flags: u32,
}

impl LoadSegment {
    /// First page address: `vaddr` rounded down.
    pub fn page_start(&self) -> u64 {
        self.vaddr - self.vaddr % PAGE_SIZE
    }

    /// End of the last page: `vaddr + memsz` rounded up (checked at parse time).
    pub fn page_end(&self) -> u64 {
        let end = self.vaddr + self.memsz;
        end.div_ceil(PAGE_SIZE) * PAGE_SIZE
    }
}

/// The facts of an ELF64 file the layout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// e_type.
    pub e_type: u16,
    /// e_entry.
    pub entry: u64,
    /// PT_LOAD segments, in program-header order.
    pub loads: Vec<LoadSegment>,
}

impl ElfInfo {
    /// Lowest page address of any PT_LOAD.
    pub fn map_start(&self) -> u64 {
        self.loads
            .iter()
            .map(LoadSegment::page_start)
            .min()
            .unwrap_or(0)
    }

    /// Highest page end of any PT_LOAD.
    pub fn map_end(&self) -> u64 {
        self.loads
            .iter()
            .map(LoadSegment::page_end)
            .max()
            .unwrap_or(0)
    }
}

fn slice<'a>(
    data: &'a [u8],
    start: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], ElfError> {
    let end = start.saturating_add(len);
    let trunc = ElfError::Truncated {
        what,
        start,
        end,
        len: data.len() as u64,
    };
    let (s, e) = (
        usize::try_from(start).map_err(|_| trunc.clone())?,
        usize::try_from(end).map_err(|_| trunc.clone())?,
    );
    data.get(s..e).ok_or(trunc)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parses the ELF header and program headers of a libpal.so, with every check above.
pub fn parse(data: &[u8]) -> Result<ElfInfo, ElfError> {
    if data.len() < 4 || data[0..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    let eh = slice(data, 0, EHDR_SIZE as u64, "ELF header")?;
    // `eh` is exactly 64 bytes, so the fixed offsets below are in bounds.
    if eh[4] != 2 {
        return Err(ElfError::WrongClass(eh[4]));
    }
    if eh[5] != 1 {
        return Err(ElfError::WrongEndianness(eh[5]));
    }
    let e_type = u16_at(eh, 16);
    let machine = u16_at(eh, 18);
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    if e_type != ET_DYN {
        return Err(ElfError::NotPie(e_type));
    }
    let entry = u64_at(eh, 24);
    let phoff = u64_at(eh, 32);
    let phentsize = u16_at(eh, 54);
    let phnum = u16_at(eh, 56);
    if phnum > 0 && usize::from(phentsize) != PHDR_SIZE {
        return Err(ElfError::BadPhentsize(phentsize));
    }
    let table = slice(
        data,
        phoff,
        u64::from(phnum) * PHDR_SIZE as u64,
        "program headers",
    )?;
    let mut loads = Vec::new();
    for (index, ph) in table.chunks_exact(PHDR_SIZE).enumerate() {
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let seg = LoadSegment {
            index,
            flags: u32_at(ph, 4),
            offset: u64_at(ph, 8),
            vaddr: u64_at(ph, 16),
            filesz: u64_at(ph, 32),
            memsz: u64_at(ph, 40),
        };
        check_segment(&seg, data.len() as u64)?;
        if let Some(other) = loads.iter().find(|o: &&LoadSegment| {
            o.page_start() < seg.page_end() && seg.page_start() < o.page_end()
        }) {
            return Err(ElfError::OverlappingSegments {
                first: other.index,
                second: index,
            });
        }
        loads.push(seg);
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    Ok(ElfInfo {
        e_type,
        entry,
        loads,
    })
}

fn check_segment(seg: &LoadSegment, file_len: u64) -> Result<(), ElfError> {
    let index = seg.index;
    if seg.memsz == 0 {
        return Err(ElfError::EmptySegment { index });
    }
    if seg.filesz > seg.memsz {
        return Err(ElfError::FileszExceedsMemsz {
            index,
            filesz: seg.filesz,
            memsz: seg.memsz,
        });
    }
    match seg.offset.checked_add(seg.filesz) {
        Some(end) if end <= file_len => {}
        _ => {
            return Err(ElfError::SegmentOutsideFile {
                index,
                offset: seg.offset,
                filesz: seg.filesz,
                len: file_len,
            })
        }
    }
    // page_end() rounds vaddr + memsz up to a page: both must fit in u64.
    match seg.vaddr.checked_add(seg.memsz) {
        Some(end) if end.checked_add(PAGE_SIZE - 1).is_some() => Ok(()),
        _ => Err(ElfError::AddressOverflow {
            index,
            vaddr: seg.vaddr,
            memsz: seg.memsz,
        }),
    }
}

/// Test helpers: building small ELF files.
#[cfg(test)]
pub(crate) mod build {
    /// (p_type, flags, offset, vaddr, filesz, memsz)
    pub type Ph = (u32, u32, u64, u64, u64, u64);

    /// An ELF64 LE x86-64 file of `len` bytes with these program headers at 64.
    pub fn elf(e_type: u16, entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(64 + 56 * phs.len())];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, &(t, fl, off, va, fs, ms)) in phs.iter().enumerate() {
            let p = 64 + 56 * i;
            f[p..p + 4].copy_from_slice(&t.to_le_bytes());
            f[p + 4..p + 8].copy_from_slice(&fl.to_le_bytes());
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 16..p + 24].copy_from_slice(&va.to_le_bytes());
            f[p + 24..p + 32].copy_from_slice(&va.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&fs.to_le_bytes());
            f[p + 40..p + 48].copy_from_slice(&ms.to_le_bytes());
            f[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::elf;
    use super::*;

    #[test]
    fn parses_the_test_libpal() {
        let info = parse(include_bytes!("../../testdata/gramine/libpal_test.so")).unwrap();
        assert_eq!(info.entry, 0x100);
        assert_eq!(info.e_type, ET_DYN);
        assert_eq!(info.loads.len(), 2);
        assert_eq!(
            info.loads[1],
            LoadSegment {
                index: 1,
                offset: 0x2000,
                vaddr: 0x2000,
                filesz: 0x300,
                memsz: 0x3400,
                flags: 6
            }
        );
        assert_eq!((info.map_start(), info.map_end()), (0, 0x6000));
    }

    #[test]
    fn refuses_bad_files() {
        assert_eq!(parse(b"").unwrap_err(), ElfError::BadMagic);
        assert_eq!(parse(b"MZ\x90\x00garbage").unwrap_err(), ElfError::BadMagic);
        assert!(matches!(
            parse(b"\x7fELF\x02\x01"),
            Err(ElfError::Truncated { .. })
        ));
        let good = elf(3, 0, &[(1, 5, 0, 0, 0x100, 0x100)], 0x200);
        assert!(parse(&good).is_ok());
        let mut f = good.clone();
        f[4] = 1;
        assert_eq!(parse(&f).unwrap_err(), ElfError::WrongClass(1));
        let mut f = good.clone();
        f[5] = 2;
        assert_eq!(parse(&f).unwrap_err(), ElfError::WrongEndianness(2));
        let mut f = good.clone();
        f[18] = 40;
        assert_eq!(parse(&f).unwrap_err(), ElfError::WrongMachine(40));
        let f = elf(2, 0, &[(1, 5, 0, 0x400000, 0x100, 0x100)], 0x200);
        assert_eq!(parse(&f).unwrap_err(), ElfError::NotPie(2));
        assert!(matches!(
            parse(&good[..100]),
            Err(ElfError::Truncated {
                what: "program headers",
                ..
            })
        ));
        let f = elf(3, 0, &[(2, 5, 0, 0, 0x100, 0x100)], 0x200);
        assert_eq!(parse(&f).unwrap_err(), ElfError::NoLoadSegments);
    }

    #[test]
    fn refuses_bad_segments() {
        let f = elf(3, 0, &[(1, 5, 0, 0, 0x200, 0x100)], 0x200);
        assert!(matches!(
            parse(&f),
            Err(ElfError::FileszExceedsMemsz { index: 0, .. })
        ));
        let f = elf(3, 0, &[(1, 5, 0x100, 0, 0x200, 0x200)], 0x200);
        assert!(matches!(
            parse(&f),
            Err(ElfError::SegmentOutsideFile { index: 0, .. })
        ));
        let f = elf(3, 0, &[(1, 5, u64::MAX, 0, 2, 2)], 0x200);
        assert!(matches!(
            parse(&f),
            Err(ElfError::SegmentOutsideFile { .. })
        ));
        let f = elf(3, 0, &[(1, 5, 0, u64::MAX - 10, 0, 2)], 0x200);
        assert!(matches!(parse(&f), Err(ElfError::AddressOverflow { .. })));
        let f = elf(3, 0, &[(1, 5, 0, 0, 0, 0)], 0x200);
        assert_eq!(parse(&f).unwrap_err(), ElfError::EmptySegment { index: 0 });
        // Overlapping ranges.
        let f = elf(
            3,
            0,
            &[(1, 5, 0, 0, 0x100, 0x3000), (1, 6, 0, 0x2000, 0x100, 0x100)],
            0x200,
        );
        assert_eq!(
            parse(&f).unwrap_err(),
            ElfError::OverlappingSegments {
                first: 0,
                second: 1
            }
        );
        // Disjoint bytes, but the same page.
        let f = elf(
            3,
            0,
            &[
                (1, 5, 0, 0, 0x100, 0x100),
                (1, 6, 0x100, 0x800, 0x100, 0x100),
            ],
            0x200,
        );
        assert!(matches!(
            parse(&f),
            Err(ElfError::OverlappingSegments { .. })
        ));
    }
}

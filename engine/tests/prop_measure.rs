//! Property test: for random layouts, the engine's MRENCLAVE equals the hash that
//! Fortanix's `sgxs` crate computes over the same layout written with its own
//! `SgxsWrite::write_page` (the crate is only a test oracle). Native only.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Read;

use kiln_engine::sgx::measure::{secinfo, EnclaveLayout, PageContent, PageRun, PAGE_SIZE};
use proptest::prelude::*;
use sgxs::sgxs::{Meas, MeasECreate, PageChunk, SecinfoTruncated, SgxsWrite};

/// One run before placement: (kind, pages, flags, chunk mask, data).
#[derive(Debug, Clone)]
struct RunSpec {
    kind: u8,
    pages: u64,
    flags: u64,
    chunks: u16,
    data: Vec<u8>,
    gap: u64,
    order_key: u32,
}

fn run_spec() -> impl Strategy<Value = RunSpec> {
    (
        0u8..4,
        1u64..4,
        prop_oneof![Just(0u64), 1u64..8, 0u64..0x40],
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..3 * 4096),
        0u64..4,
        any::<u32>(),
        prop_oneof![3 => 1u64..4, 1 => 1000u64..3000],
    )
        .prop_map(|(kind, pages, perm, chunks, data, gap, order_key, big)| {
            let (pages, chunks) = match kind {
                // Given bytes, random chunk mask.
                0 => ((data.len() as u64).div_ceil(PAGE_SIZE).max(pages), chunks),
                // Zero pages, random mask.
                1 => (pages, chunks),
                // EADD-only run (small or large).
                2 => (big, 0),
                // A TCS page with random contents.
                _ => (1, chunks),
            };
            RunSpec {
                kind,
                pages,
                flags: secinfo::PT_REG | perm,
                chunks,
                data,
                gap,
                order_key,
            }
        })
}

fn layout_strategy() -> impl Strategy<Value = EnclaveLayout> {
    (
        14u32..=40,
        1u32..=8,
        proptest::collection::vec(run_spec(), 1..10),
    )
        .prop_map(|(size_log2, ssa, specs)| {
            let size = 1u64 << size_log2;
            let mut placed = Vec::new();
            let mut cursor = 0u64;
            for s in specs {
                let offset = (cursor + s.gap) * PAGE_SIZE;
                if offset + s.pages * PAGE_SIZE > size {
                    continue;
                }
                cursor += s.gap + s.pages;
                let run = match s.kind {
                    0 => PageRun {
                        offset,
                        pages: s.pages,
                        flags: s.flags,
                        chunks: s.chunks,
                        content: PageContent::Bytes(s.data),
                    },
                    1 | 2 => PageRun::zero(offset, s.pages, s.flags, s.chunks),
                    _ => {
                        let mut d = s.data;
                        d.resize(4096, 0x5a);
                        PageRun {
                            offset,
                            pages: 1,
                            flags: secinfo::PT_TCS | (s.flags & 7),
                            chunks: s.chunks,
                            content: PageContent::Bytes(d),
                        }
                    }
                };
                placed.push((s.order_key, run));
            }
            // Gramine's order is not address order: shuffle by the random keys.
            placed.sort_by_key(|(k, _)| *k);
            let mut layout = EnclaveLayout::new(size, ssa).expect("valid size");
            for (_, run) in placed {
                layout.push(run).expect("runs are disjoint and inside");
            }
            layout
        })
}

/// The full contents of page `i` of `run`, as the hardware would measure it.
fn page_data(run: &PageRun, i: u64) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    if let PageContent::Bytes(b) = &run.content {
        let start = (i * PAGE_SIZE) as usize;
        if start < b.len() {
            let n = (b.len() - start).min(4096);
            page[..n].copy_from_slice(&b[start..start + n]);
        }
    }
    if run.flags & secinfo::PAGE_TYPE_MASK == secinfo::PT_TCS {
        // EADD clears STATE, FLAGS.DBGOPTIN, CSSA and AEP (written out independently of
        // the engine's own helper).
        page[0..8].fill(0);
        page[8] &= 0xfe;
        page[24..28].fill(0);
        page[40..48].fill(0);
    }
    page
}

/// Writes `layout` with the sgxs crate's own writer.
fn oracle_stream(layout: &EnclaveLayout) -> Vec<u8> {
    let mut out = Vec::new();
    out.write_meas(&Meas::ECreate(MeasECreate {
        ssaframesize: layout.ssa_frame_size(),
        size: layout.size(),
    }))
    .unwrap();
    for run in layout.runs() {
        let mut flags = run.flags;
        if flags & secinfo::PAGE_TYPE_MASK == secinfo::PT_TCS {
            flags = secinfo::PT_TCS;
        }
        let secinfo = || SecinfoTruncated {
            flags: sgx_isa::SecinfoFlags::from_bits_truncate(flags),
        };
        for i in 0..run.pages {
            let offset = run.offset + i * PAGE_SIZE;
            if run.chunks == 0 {
                out.write_page(None::<&mut &[u8]>, offset, secinfo())
                    .unwrap();
                continue;
            }
            let page = page_data(run, i);
            let mut chunks = [PageChunk::Skipped; 16];
            let mut included = Vec::new();
            for (c, chunk) in chunks.iter_mut().enumerate() {
                if run.chunks & (1 << c) != 0 {
                    *chunk = PageChunk::IncludedMeasured;
                    included.extend_from_slice(&page[c * 256..(c + 1) * 256]);
                }
            }
            let mut reader: &[u8] = &included;
            out.write_page((&mut reader, chunks), offset, secinfo())
                .unwrap();
            assert_eq!(reader.bytes().count(), 0);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mrenclave_matches_sgxs_oracle(layout in layout_strategy()) {
        let stream = oracle_stream(&layout);
        let oracle = sgxs::sigstruct::EnclaveHash::from_stream::<_, openssl::hash::Hasher>(
            &mut stream.as_slice(),
        )
        .unwrap();
        let ours = layout.measure();
        prop_assert_eq!(ours.mrenclave, oracle.hash());
        prop_assert_eq!(ours.eadd_count, layout.eadd_count());
        prop_assert_eq!(ours.eextend_count, layout.eextend_count());
        // Our SGXS writer produces the very same bytes, and our reader the same hash.
        let mut mine = Vec::new();
        kiln_engine::sgx::sgxs::write_sgxs(&layout, &mut mine).unwrap();
        prop_assert!(mine == stream, "SGXS streams differ");
        let read = kiln_engine::sgx::sgxs::measure_sgxs(stream.as_slice()).unwrap();
        prop_assert_eq!(read.mrenclave, oracle.hash());
    }
}

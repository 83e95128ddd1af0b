//! MRENCLAVE test vectors and error cases, run natively and in headless Chromium.
//!
//! Expected values come from independent tools (Fortanix's `sgxs` and Gramine v1.9's
//! signer), see testdata/README.md.

use kiln_engine::sgx::elf::{self, ElfError};
use kiln_engine::sgx::gramine_layout::{self, LayoutError};
use kiln_engine::sgx::manifest_params::{ManifestParamsError, SgxManifestParams};
use kiln_engine::sgx::measure::{EnclaveLayout, MeasureError, PageRun};
use kiln_engine::sgx::sgxs;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const TEST_ENCLAVE: &[u8] = include_bytes!("../testdata/sgxs/test_enclave.sgxs");
const T1: &[u8] = include_bytes!("../testdata/gramine/t1.manifest.sgx");
const T2: &[u8] = include_bytes!("../testdata/gramine/t2.manifest.sgx");
const PAL: &[u8] = include_bytes!("../testdata/gramine/libpal_test.so");

/// A copy of the test libpal with the ELF header field at `at` replaced.
fn patched_pal(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = PAL.to_vec();
    f[at..at + bytes.len()].copy_from_slice(bytes);
    f
}

/// Offset of program header `i`'s field at `field` in the test libpal.
fn ph(i: usize, field: usize) -> usize {
    64 + 56 * i + field
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sgxs_test_enclave() {
    let m = sgxs::measure_sgxs(TEST_ENCLAVE).unwrap();
    assert_eq!(
        hex::encode(m.mrenclave),
        "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
    );
    assert_eq!((m.size, m.ssa_frame_size), (0x40000, 1));
    assert_eq!((m.eadd_count, m.eextend_count), (9, 144));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn gramine_t1() {
    let m = gramine_layout::measure(T1, PAL).unwrap();
    assert_eq!(
        hex::encode(m.mrenclave),
        "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b"
    );
    assert_eq!((m.eadd_count, m.eextend_count), (496, 2992));
    assert_eq!(m.params.max_threads, 2);
    assert!(m.params.debug);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn gramine_t2_edmm() {
    let m = gramine_layout::measure(T2, PAL).unwrap();
    assert_eq!(
        hex::encode(m.mrenclave),
        "f3e636e9c4e2f36898cff29975b94299ac175fb72d84338ad090c7e44d516c18"
    );
    assert_eq!(m.eadd_count, 187);
    assert!(m.params.edmm_enable);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn gramine_t1_through_sgxs_writer() {
    let g = gramine_layout::layout(T1, PAL).unwrap();
    let mut stream = Vec::new();
    sgxs::write_sgxs(&g.layout, &mut stream).unwrap();
    let m = sgxs::measure_sgxs(stream.as_slice()).unwrap();
    assert_eq!(
        hex::encode(m.mrenclave),
        "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn elf_errors() {
    assert_eq!(
        gramine_layout::measure(T1, b"garbage, not an ELF").unwrap_err(),
        LayoutError::Elf(ElfError::BadMagic)
    );
    let truncated = gramine_layout::measure(T1, &PAL[..40]).unwrap_err();
    assert!(truncated.to_string().contains("truncated"), "{truncated}");
    // Cut inside the second segment's file bytes.
    let cut = gramine_layout::measure(T1, &PAL[..0x2100]).unwrap_err();
    assert!(
        matches!(
            cut,
            LayoutError::Elf(ElfError::SegmentOutsideFile { index: 1, .. })
        ),
        "{cut}"
    );
    let exec = patched_pal(16, &2u16.to_le_bytes());
    let e = gramine_layout::measure(T1, &exec).unwrap_err();
    assert_eq!(e, LayoutError::Elf(ElfError::NotPie(2)));
    assert!(e.to_string().contains("position-independent"));
    // Make PT_LOAD #0 reach into PT_LOAD #1's pages (memsz 0x1200 -> 0x2100).
    let overlap = patched_pal(ph(0, 40), &0x2100u64.to_le_bytes());
    assert_eq!(
        gramine_layout::measure(T1, &overlap).unwrap_err(),
        LayoutError::Elf(ElfError::OverlappingSegments {
            first: 0,
            second: 1
        })
    );
    // filesz > memsz in PT_LOAD #1.
    let fat = patched_pal(ph(1, 32), &0x3500u64.to_le_bytes());
    assert!(matches!(
        elf::parse(&fat),
        Err(ElfError::FileszExceedsMemsz { index: 1, .. })
    ));
    let be = patched_pal(5, &[2]);
    assert_eq!(elf::parse(&be), Err(ElfError::WrongEndianness(2)));
    let class32 = patched_pal(4, &[1]);
    assert_eq!(elf::parse(&class32), Err(ElfError::WrongClass(1)));
    let arm = patched_pal(18, &183u16.to_le_bytes());
    assert_eq!(elf::parse(&arm), Err(ElfError::WrongMachine(183)));
    // Lowest PT_LOAD moved up to 0x1000 (and the other one further up, to stay apart).
    let high = patched_pal(ph(0, 16), &0x1000u64.to_le_bytes());
    let mut high = high;
    high[ph(1, 16)..ph(1, 16) + 8].copy_from_slice(&0x3000u64.to_le_bytes());
    assert_eq!(
        gramine_layout::measure(T1, &high).unwrap_err(),
        LayoutError::PalNotAtZero(0x1000)
    );
}

fn params(size: u64, threads: u32) -> SgxManifestParams {
    let mut p = SgxManifestParams::from_manifest(T1).unwrap();
    p.enclave_size = size;
    p.max_threads = threads;
    p
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn layout_errors() {
    let pal = elf::parse(PAL).unwrap();
    let e = gramine_layout::layout_with(T1, &params(2 << 20, 0), &pal, PAL).unwrap_err();
    assert_eq!(e, LayoutError::NoThreads);
    let e = gramine_layout::layout_with(T1, &params(3 << 20, 2), &pal, PAL).unwrap_err();
    assert_eq!(e, LayoutError::SizeNotPowerOfTwo(3 << 20));
    assert!(e.to_string().contains("power of two"));
    // 16 threads need 16 * 360 KiB: far more than 2 MiB.
    let e = gramine_layout::layout_with(T1, &params(2 << 20, 16), &pal, PAL).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::EnclaveTooSmall {
                size: 0x200000,
                threads: 16,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("too small"));
    // t1's areas take 187 pages (0xbb000 bytes): 1 MiB fits with a 53-page heap, 512 KiB not.
    let g = gramine_layout::layout_with(T1, &params(1 << 20, 2), &pal, PAL).unwrap();
    assert_eq!(g.layout.eadd_count(), 187 + 53);
    let e = gramine_layout::layout_with(T1, &params(512 << 10, 2), &pal, PAL).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::EnclaveTooSmall {
                needed: 0xbb000,
                ..
            }
        ),
        "{e}"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn manifest_errors() {
    let cases: [(&[u8], &str); 6] = [
        (b"[sgx]\nenclave_size = \"3M\"\n", "sgx.enclave_size"),
        (b"[sgx]\nmax_threads = 0\n", "sgx.max_threads"),
        (b"sgx.isvprodid = 70000\n", "sgx.isvprodid"),
        (b"sgx.isvsvn = \"1\"\n", "sgx.isvsvn"),
        (
            b"sgx.cpu_features.mpx = \"unspecified\"\n",
            "sgx.cpu_features.mpx",
        ),
        (b"[sgx]\ndebug = \"no\"\n", "sgx.debug"),
    ];
    for (text, key) in cases {
        let e = gramine_layout::measure(text, PAL).unwrap_err();
        assert!(matches!(e, LayoutError::Manifest(_)), "{e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    let e = gramine_layout::measure(b"[sgx\n", PAL).unwrap_err();
    assert!(matches!(
        e,
        LayoutError::Manifest(ManifestParamsError::Toml(_))
    ));
    // 256M default, 4 threads: fits.
    assert!(gramine_layout::measure(b"", PAL).is_ok());
    // 64K: nothing fits above 0x10000.
    let e = gramine_layout::measure(b"sgx.enclave_size = \"64K\"", PAL).unwrap_err();
    assert!(matches!(e, LayoutError::EnclaveTooSmall { .. }), "{e}");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn enclave_layout_errors() {
    assert_eq!(
        EnclaveLayout::new(0x30000, 1).unwrap_err(),
        MeasureError::SizeNotPowerOfTwo(0x30000)
    );
    let mut l = EnclaveLayout::new(0x20000, 1).unwrap();
    l.push(PageRun::eadd_only(0x1000, 4, 0x203)).unwrap();
    assert!(matches!(
        l.push(PageRun::eadd_only(0x4000, 1, 0x203)),
        Err(MeasureError::Overlap { .. })
    ));
    assert!(matches!(
        l.push(PageRun::eadd_only(0x1f000, 2, 0x203)),
        Err(MeasureError::OutsideEnclave { .. })
    ));
    assert_eq!(
        l.push(PageRun::eadd_only(0x800, 1, 0x203)),
        Err(MeasureError::Unaligned(0x800))
    );
}

#[cfg(target_arch = "wasm32")]
#[path = "../benches/measure_common/mod.rs"]
mod measure_common;

/// The wasm variant of benches/measure_heap.rs (64 GiB SGX1 heap vs plain SHA-256):
/// `cargo test --release -p kiln-engine --target wasm32-unknown-unknown --test
/// vectors_measure -- --include-ignored bench_heap_wasm`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
#[ignore]
fn bench_heap_wasm() {
    let r = measure_common::run(2, || js_sys::Date::now() / 1000.0);
    wasm_bindgen_test::console_log!("{}", r.report("wasm"));
}

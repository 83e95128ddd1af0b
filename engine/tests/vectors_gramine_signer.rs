//! Twelve manifests measured and signed by Gramine v1.9's own signer (`graminelibos.sgx_sign`,
//! `get_tbssigstruct` + `sign_with_private_key_from_pem_path`) with the synthetic
//! `libpal_test.so` and the test key: SGX1 and EDMM, 1 to 64 threads, default and explicit
//! sizes in every syntax (`K`/`M`, hex, inline tables, `[sgx]` sections), cpu_features,
//! EXINFO, ISV ids, a 400-entry manifest of several pages, and kiln's own golden manifest
//! as its EDMM variant (EXINFO, SIGTERM injection, an 8M-style stack option) and as an SGX1
//! enclave with EXINFO (javaMode). kiln must reproduce each
//! SIGSTRUCT byte for byte (see testdata/gramine-signer/README.md). Native and wasm32.

use std::future::Future;

use kiln_engine::sgx::gramine_layout;
use kiln_engine::sgx::signer::{gramine_sigstruct_body, sign, PrivateKeySigner};
use kiln_engine::sgx::sigstruct_date::SigstructDate;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const PAL: &[u8] = include_bytes!("../testdata/gramine/libpal_test.so");
const KEY: &str = include_str!("../testdata/gramine/test-key.pem");

/// (name, date, manifest, Gramine's SIGSTRUCT)
type Case = (&'static str, (u16, u8, u8), &'static [u8], &'static [u8]);

const CASES: &[Case] = &[
    (
        "g01-sgx1-min",
        (2024, 2, 29),
        include_bytes!("../testdata/gramine-signer/g01-sgx1-min.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g01-sgx1-min.sig"),
    ),
    (
        "g02-sgx1-nondebug",
        (2026, 11, 27),
        include_bytes!("../testdata/gramine-signer/g02-sgx1-nondebug.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g02-sgx1-nondebug.sig"),
    ),
    (
        "g03-edmm-default-size",
        (2025, 6, 30),
        include_bytes!("../testdata/gramine-signer/g03-edmm-default-size.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g03-edmm-default-size.sig"),
    ),
    (
        "g04-edmm-64threads",
        (2030, 12, 31),
        include_bytes!("../testdata/gramine-signer/g04-edmm-64threads.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g04-edmm-64threads.sig"),
    ),
    (
        "g05-cpu-features",
        (2023, 1, 1),
        include_bytes!("../testdata/gramine-signer/g05-cpu-features.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g05-cpu-features.sig"),
    ),
    (
        "g06-exinfo-debug",
        (2022, 10, 10),
        include_bytes!("../testdata/gramine-signer/g06-exinfo-debug.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g06-exinfo-debug.sig"),
    ),
    (
        "g07-default-threads",
        (2021, 7, 4),
        include_bytes!("../testdata/gramine-signer/g07-default-threads.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g07-default-threads.sig"),
    ),
    (
        "g08-big-manifest",
        (2027, 3, 15),
        include_bytes!("../testdata/gramine-signer/g08-big-manifest.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g08-big-manifest.sig"),
    ),
    (
        "g09-sgx1-defaults",
        (2026, 1, 1),
        include_bytes!("../testdata/gramine-signer/g09-sgx1-defaults.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g09-sgx1-defaults.sig"),
    ),
    (
        "g10-edmm-small",
        (2029, 9, 9),
        include_bytes!("../testdata/gramine-signer/g10-edmm-small.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g10-edmm-small.sig"),
    ),
    (
        "g11-kiln-edmm-exinfo",
        (2026, 12, 7),
        include_bytes!("../testdata/gramine-signer/g11-kiln-edmm-exinfo.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g11-kiln-edmm-exinfo.sig"),
    ),
    (
        "g12-kiln-sgx1-exinfo",
        (2027, 3, 1),
        include_bytes!("../testdata/gramine-signer/g12-kiln-sgx1-exinfo.manifest.sgx"),
        include_bytes!("../testdata/gramine-signer/g12-kiln-sgx1-exinfo.sig"),
    ),
];

/// Runs a future that completes on its first poll (everything here is synchronous underneath).
fn block_on<F: Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("the future never pends")
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn every_gramine_sigstruct_reproduced_byte_for_byte() {
    let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
    for (name, (y, m, d), manifest, want) in CASES {
        let measured = gramine_layout::measure(manifest, PAL)
            .unwrap_or_else(|e| panic!("{name}: measuring: {e}"));
        // ENCLAVEHASH sits at offset 960 of a SIGSTRUCT.
        assert_eq!(
            hex::encode(measured.mrenclave),
            hex::encode(&want[960..992]),
            "{name}: MRENCLAVE"
        );
        let date = SigstructDate::new(*y, *m, *d).unwrap();
        let body = gramine_sigstruct_body(measured.mrenclave, &measured.params, date);
        let sig = block_on(sign(body, &signer)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sig.to_bytes().as_slice(), *want, "{name}: SIGSTRUCT bytes");
    }
}

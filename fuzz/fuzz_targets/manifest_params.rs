//! The manifest `sgx.*` parser must never panic; accepted values respect their ranges.
#![no_main]

use kiln_engine::sgx::manifest_params::SgxManifestParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = SgxManifestParams::from_manifest(data) {
        assert!(p.enclave_size.is_power_of_two());
        assert!(p.max_threads >= 1);
    }
});

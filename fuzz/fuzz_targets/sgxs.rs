//! The SGXS stream reader must never panic.
#![no_main]

use kiln_engine::sgx::sgxs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sgxs::measure_sgxs(data);
});

//! The conversion request as the API receives it: JSON parsing and validation never
//! panic, whatever the bytes.
#![no_main]

use kiln_engine::api::ConvertRequest;
use kiln_engine::gramine::validate::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<ConvertRequest>(data) {
        let _ = validate(&req);
    }
});

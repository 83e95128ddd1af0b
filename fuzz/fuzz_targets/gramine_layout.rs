//! Building a Gramine layout from an arbitrary manifest and libpal must never panic.
//! Input: u16 manifest length, manifest bytes, then the libpal bytes. The layout is only
//! built, not hashed (a huge heap would make hashing slow, not wrong).
#![no_main]

use kiln_engine::sgx::gramine_layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (manifest, libpal) = rest.split_at(len);
    if let Ok(g) = gramine_layout::layout(manifest, libpal) {
        assert!(g.layout.eadd_count() > 0);
    }
});

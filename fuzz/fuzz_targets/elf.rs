//! The libpal ELF reader must never panic, and what it accepts must be consistent.
#![no_main]

use kiln_engine::sgx::elf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = elf::parse(data) {
        assert!(!info.loads.is_empty());
        for s in &info.loads {
            assert!(s.filesz <= s.memsz);
            assert!(s.offset + s.filesz <= data.len() as u64);
            assert!(s.page_start() < s.page_end());
        }
    }
});

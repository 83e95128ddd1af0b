//! Shared by the native benchmark (benches/measure_heap.rs) and its wasm variant (an
//! ignored test in tests/vectors_measure.rs): MRENCLAVE of an SGX1 Gramine layout with a
//! 64 GiB heap (about 16M EADD records, 1 GiB of hashing) against plain SHA-256 over
//! the same number of bytes, in the same run.

use kiln_engine::sgx::gramine_layout;
use sha2::{Digest, Sha256};

/// The manifest of the benchmark enclave: 64 GiB, 4 threads, no EDMM.
pub const MANIFEST: &[u8] =
    b"[sgx]\nenclave_size = \"64G\"\nmax_threads = 4\nedmm_enable = false\n";
/// The synthetic libpal of the test vectors.
pub const PAL: &[u8] = include_bytes!("../../testdata/gramine/libpal_test.so");

/// Timings of one benchmark run (best of `rounds`).
pub struct HeapBench {
    /// MRENCLAVE of the benchmark layout.
    pub mrenclave: [u8; 32],
    /// EADD records.
    pub eadd: u64,
    /// Bytes hashed into MRENCLAVE.
    pub bytes: u64,
    /// Seconds for the layout + MRENCLAVE.
    pub measure_secs: f64,
    /// Seconds for plain SHA-256 over `bytes` (64 KiB updates).
    pub sha_secs: f64,
}

impl HeapBench {
    /// measure / sha256.
    pub fn ratio(&self) -> f64 {
        self.measure_secs / self.sha_secs
    }

    /// A printable summary.
    pub fn report(&self, platform: &str) -> String {
        let gib = self.bytes as f64 / (1u64 << 30) as f64;
        format!(
            "[{platform}] 64 GiB SGX1 heap: {} EADD, {:.3} GiB hashed, mrenclave {}\n\
             [{platform}] mrenclave: {:.3} s ({:.0} MiB/s); plain sha256: {:.3} s ({:.0} MiB/s); ratio {:.3}x",
            self.eadd,
            gib,
            hex::encode(self.mrenclave),
            self.measure_secs,
            gib * 1024.0 / self.measure_secs,
            self.sha_secs,
            gib * 1024.0 / self.sha_secs,
            self.ratio()
        )
    }
}

fn plain_sha256(bytes: u64) -> [u8; 32] {
    let buf = vec![0x5au8; 64 * 1024];
    let mut h = Sha256::new();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize().into()
}

/// Runs the benchmark `rounds` times, alternating, and keeps the best time of each;
/// `now` returns seconds from any fixed origin.
pub fn run(rounds: u32, now: impl Fn() -> f64) -> HeapBench {
    let mut best_measure = f64::INFINITY;
    let mut best_sha = f64::INFINITY;
    let mut result = None;
    for _ in 0..rounds {
        let t0 = now();
        let m = gramine_layout::measure(MANIFEST, PAL).expect("benchmark layout");
        let t1 = now();
        let bytes = 64 + 64 * m.eadd_count + 320 * m.eextend_count;
        let digest = plain_sha256(bytes);
        let t2 = now();
        std::hint::black_box(digest);
        best_measure = best_measure.min(t1 - t0);
        best_sha = best_sha.min(t2 - t1);
        result = Some((m.mrenclave, m.eadd_count, bytes));
    }
    let (mrenclave, eadd, bytes) = result.expect("at least one round");
    HeapBench {
        mrenclave,
        eadd,
        bytes,
        measure_secs: best_measure,
        sha_secs: best_sha,
    }
}

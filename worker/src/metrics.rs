//! Figures of this isolate for tests and benchmarks (`GET /debug/metrics`, served only when
//! the var [`DEBUG_METRICS`] is `1`): the subrequests it has made (every upstream `fetch`,
//! each redirect hop counted, as the platform counts them) and the size of its wasm linear
//! memory, which never shrinks, so read after a conversion it is that isolate's peak. Nothing
//! here names a request, a registry or a secret.

use std::sync::atomic::{AtomicU64, Ordering};

/// The var that turns `GET /debug/metrics` on (tests and scripts/bench-worker.sh only).
pub const DEBUG_METRICS: &str = "KILN_DEBUG_METRICS";

static SUBREQUESTS: AtomicU64 = AtomicU64::new(0);

/// Counts one upstream `fetch` (called before it is sent).
pub fn count_subrequest() {
    SUBREQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// Upstream `fetch`es made by this isolate so far.
pub fn subrequests() -> u64 {
    SUBREQUESTS.load(Ordering::Relaxed)
}

/// Bytes of wasm linear memory (0 outside wasm).
pub fn wasm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (core::arch::wasm32::memory_size(0) as u64) * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// The `/debug/metrics` body: `{"subrequests": N, "wasmMemoryBytes": N}`.
pub fn body() -> String {
    serde_json::json!({
        "subrequests": subrequests(),
        "wasmMemoryBytes": wasm_memory_bytes(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_reports() {
        let before = subrequests();
        count_subrequest();
        count_subrequest();
        let v: serde_json::Value = serde_json::from_str(&body()).unwrap();
        assert!(v["subrequests"].as_u64().unwrap() >= before + 2);
        assert_eq!(v["wasmMemoryBytes"].as_u64(), Some(0));
    }
}

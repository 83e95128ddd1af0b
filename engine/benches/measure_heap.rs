//! MRENCLAVE of an SGX1 layout with a 64 GiB heap vs plain SHA-256 of the same bytes.
//!
//! Run: `cargo bench -p kiln-engine --bench measure_heap`. The wasm variant is the
//! ignored test `bench_heap_wasm` in tests/vectors_measure.rs.

#[path = "measure_common/mod.rs"]
mod measure_common;

fn main() {
    let origin = std::time::Instant::now();
    let r = measure_common::run(3, || origin.elapsed().as_secs_f64());
    println!("{}", r.report("native"));
}

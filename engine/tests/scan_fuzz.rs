//! Untrusted input never panics: deterministic mutations (bit flips, truncations, byte
//! splices) of real layers, plain and compressed, fed in odd chunk sizes. Each case must
//! end in `Ok` or a clean error. (Kept small for debug builds; `KILN_FUZZ_SCALE=100` with
//! `--release` for a longer run.)

use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::file_index::FileIndex;
use kiln_engine::image::scan::{Compression, LayerScanner};

const BLOB: &[u8] = include_bytes!("../testdata/layers/sample-gnu.tar.gz");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            // Overwrite a header-sized window with random bytes.
            let i = rng.below(v.len());
            for b in v.iter_mut().skip(i).take(512) {
                *b = rng.next() as u8;
            }
        }
        _ => {
            // Put a plausible octal/base-256 size somewhere in a header.
            let block = rng.below(v.len() / 512) * 512;
            if let Some(field) = v.get_mut(block + 124..block + 136) {
                field.copy_from_slice(if rng.below(2) == 0 {
                    b"77777777777\0"
                } else {
                    &[
                        0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    ]
                });
            }
        }
    }
    v
}

fn run(compression: Compression, blob: &[u8], chunk: usize) {
    let Ok(mut s) = LayerScanner::with_compression(&sha256_digest(blob), compression) else {
        return;
    };
    for c in blob.chunks(chunk.max(1)) {
        if s.feed(c).is_err() {
            return;
        }
    }
    if let Ok(summary) = s.finish() {
        let _ = FileIndex::from_layers([&summary]);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn mutated_layers_never_panic() {
    let tar = gunzip(BLOB);
    let zst = ruzstd::encoding::compress_to_vec(
        &tar[..96 * 1024],
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    // KILN_FUZZ_SCALE=100 for a longer run (use --release).
    let scale: usize = std::env::var("KILN_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..50 * scale {
        let chunk = 1 + rng.below(70_000);
        run(Compression::None, &mutate(&mut rng, &tar), chunk);
    }
    for _ in 0..15 * scale {
        let chunk = 1 + rng.below(70_000);
        run(Compression::Gzip, &mutate(&mut rng, BLOB), chunk);
        run(Compression::Zstd, &mutate(&mut rng, &zst), chunk);
    }
}

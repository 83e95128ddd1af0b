#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 60 s each):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# With cargo-fuzz and a nightly toolchain: coverage-guided (`cargo +nightly fuzz run`;
# gzip_layer without a sanitizer, see fuzz/README.md). With nightly but no cargo-fuzz: the
# same SanitizerCoverage flags cargo-fuzz passes (no ASan), built here, still guided.
# With neither: stable-built libFuzzer binaries run uninstrumented (random inputs, no
# coverage guidance) -- a smoke run, said so in the output.
# Corpora live in fuzz/corpus/TARGET (git-ignored by cargo-fuzz); crashes in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^kiln-fuzz$')
fi
guided=0
bin=./target/release
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  guided=1
elif cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no cargo-fuzz: building with SanitizerCoverage on nightly (no ASan)" >&2
  triple=x86_64-unknown-linux-gnu
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    cargo +nightly build --release --bins --target "$triple" --target-dir target/guided
  bin="./target/guided/$triple/release"
else
  echo "fuzz.sh: no nightly toolchain: running uninstrumented libFuzzer binaries" >&2
  cargo build --release --bins
fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t ($secs s)"
  if [ "$guided" = 1 ]; then
    san=()
    [ "$t" = gzip_layer ] && san=(-s none)
    cargo +nightly fuzz run "${san[@]}" "$t" -- -max_total_time="$secs" -artifact_prefix="artifacts/$t/"
  else
    "$bin/$t" "corpus/$t" -max_total_time="$secs" -artifact_prefix="artifacts/$t/"
  fi
done

#!/usr/bin/env bash
# Benchmark: a 200 MB+ image of random-content layers (tests/examples/bench_app_image.rs)
# converted in the web app (headless Chromium, engine in a Web Worker, layers through the
# worker's proxy) vs the native `kiln convert` (release) of the same image, in the same
# run, both cold. Prints both times and the ratio (numbers, never assertions).
#   scripts/bench-app.sh            # KILN_BENCH_MIB=220 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
dist=$(scripts/build-app.sh)
cargo build -q --release -p kiln --bin kiln
cargo build -q -p kiln-tests --example demo_images --example bench_app_image
scripts/build-worker.sh --if-stale
cd tests/e2e-app
KILN_REPO="$ROOT" KILN_DIST="$dist" KILN_WORKER_NO_BUILD=1 KILN_BIN="$ROOT/target/release/kiln" \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" node bench.mjs

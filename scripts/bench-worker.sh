#!/usr/bin/env bash
# Benchmarks of the worker; prints the numbers, asserts nothing about time.
#   1. the registry proxy: a 200 MiB blob (KILN_BENCH_MB) PUT and GET through the worker in workerd
#      vs straight to a loopback docker-registry, same run, medians of KILN_BENCH_ROUNDS (3), and
#      workerd's RSS (worker/test/bench.mjs);
#   2. the edge API: the busybox sample converted through POST /convert-image, cold (fresh workerd)
#      and warm, vs the native `kiln convert` of the same image in the same run
#      (worker/test/bench-edge.mjs; the native binary is the release build of kiln).
#   3. the isolate: wasm linear memory, JS heap (workerd's inspector), workerd's CPU time and the
#      subrequest count of edge conversions of deterministic many-file images (input and output on
#      two loopback docker-registries), by default 256 MiB / 5,000 files, 1 GiB / 20,000 files
#      (10 data layers each) and 100 MiB / 100,000 files (worker/test/bench-isolate.mjs;
#      KILN_BENCH_IMAGES="MIB:FILES:LAYERS,..." to choose; images made by the example
#      bench_edge_image). Method and figures: docs/benchmarks.md.
# KILN_BENCH_ONLY=proxy|edge|isolate runs one of them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/build-worker.sh" 2>/dev/null
only=${KILN_BENCH_ONLY:-all}
if [ "$only" = all ] || [ "$only" = edge ]; then
  # The baseline is the release CLI (the worker is a release build too).
  (cd "$ROOT" && cargo build -q --release -p kiln --bin kiln)
fi
if [ "$only" != proxy ]; then
  (cd "$ROOT" && cargo build -q -p kiln-tests --example demo_images --example bench_edge_image)
fi
cd "$ROOT/worker"
if [ "$only" = all ] || [ "$only" = proxy ]; then KILN_WORKER_NO_BUILD=1 node test/bench.mjs; fi
if [ "$only" = all ] || [ "$only" = edge ]; then KILN_WORKER_NO_BUILD=1 node test/bench-edge.mjs; fi
if [ "$only" = all ] || [ "$only" = isolate ]; then
  KILN_WORKER_NO_BUILD=1 node --experimental-websocket test/bench-isolate.mjs
fi

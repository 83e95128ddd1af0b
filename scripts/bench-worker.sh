#!/usr/bin/env bash
# Benchmarks of the worker; prints the numbers, asserts nothing about time.
#   1. the registry proxy: a 200 MiB blob (KILN_BENCH_MB) PUT and GET through the worker in workerd
#      vs straight to a loopback docker-registry, same run, medians of KILN_BENCH_ROUNDS (3), and
#      workerd's RSS (worker/test/bench.mjs);
#   2. the edge API: the busybox sample converted through POST /convert-image, cold (fresh workerd)
#      and warm, vs the native `kiln convert` of the same image in the same run
#      (worker/test/bench-edge.mjs; the native binary is the release build of kiln).
# KILN_BENCH_ONLY=proxy|edge runs one of them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/build-worker.sh" 2>/dev/null
only=${KILN_BENCH_ONLY:-all}
if [ "$only" != proxy ]; then
  # The baseline is the release CLI (the worker is a release build too).
  (cd "$ROOT" && cargo build -q --release -p kiln --bin kiln && cargo build -q -p kiln-tests --example demo_images)
fi
cd "$ROOT/worker"
if [ "$only" != edge ]; then KILN_WORKER_NO_BUILD=1 node test/bench.mjs; fi
if [ "$only" != proxy ]; then KILN_WORKER_NO_BUILD=1 node test/bench-edge.mjs; fi

#!/usr/bin/env bash
# Benchmark of the registry proxy: a 200 MiB blob (KILN_BENCH_MB) PUT and GET through the worker
# in workerd vs straight to a loopback docker-registry, same run, medians of KILN_BENCH_ROUNDS (3),
# and workerd's RSS. Prints the numbers; asserts nothing about time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/build-worker.sh" 2>/dev/null
cd "$ROOT/worker"
KILN_WORKER_NO_BUILD=1 node test/bench.mjs

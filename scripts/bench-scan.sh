#!/usr/bin/env bash
# Layer scan benchmark: generates (once, cached in target/bench-scan) a synthetic image of
# ~1.1 GiB uncompressed in 21,000+ files over 3 gzip layers, then prints kiln's native
# scan time against `gzip -dc | sha256sum`, the cached re-scan time and peak RSS.
# Knobs: KILN_BENCH_DIR, KILN_BENCH_GIB (default 1.1), KILN_BENCH_RUNS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p kiln-engine --bench scan "$@"

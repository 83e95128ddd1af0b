#!/usr/bin/env bash
# Builds kiln's Cloudflare Worker (crate worker/, package kiln-worker) into worker/build/ with
# worker-build, without downloading anything: worker-build's own downloads of wasm-bindgen and
# wasm-opt are replaced by the wasm-bindgen-cli that scripts/install-deps.sh installs (same
# version as Cargo.lock) and npm binaryen@132's wasm-opt (worker/node_modules; Debian's wasm-opt 108
# cannot read the module).
#
#   scripts/build-worker.sh                   # release build, wasm-opt -Oz when npm binaryen is there
#   scripts/build-worker.sh --if-stale        # only when the build is missing or older than the
#                                             # worker's (with openapi.json) or the engine's sources or Cargo.lock
#   KILN_WASM_OPT=0 scripts/build-worker.sh   # skip wasm-opt
#   KILN_WASM_OPT=1 scripts/build-worker.sh   # require wasm-opt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/worker"
if [ "${1:-}" = --if-stale ] && [ -f build/index_bg.wasm ] && [ -z "$(find src Cargo.toml openapi.json \
    "$ROOT/engine/src" "$ROOT/engine/Cargo.toml" "$ROOT/Cargo.lock" -newer build/index_bg.wasm \
    -print -quit)" ]; then
  exit 0
fi
command -v worker-build >/dev/null || { echo "build-worker: worker-build missing; run scripts/install-deps.sh" >&2; exit 1; }
WASM_BINDGEN_BIN=$(command -v wasm-bindgen) || { echo "build-worker: wasm-bindgen missing; run scripts/install-deps.sh" >&2; exit 1; }
export WASM_BINDGEN_BIN
# worker-build must not try to fetch anything: Cargo.toml's wasm-pack metadata turns its own
# wasm-opt step off.
worker-build --release >&2
opt=${KILN_WASM_OPT:-auto}
if [ "$opt" = auto ]; then [ -x node_modules/.bin/wasm-opt ] && opt=1 || opt=0; fi
if [ "$opt" = 1 ]; then
  [ -x node_modules/.bin/wasm-opt ] || { echo "build-worker: npm binaryen missing (cd worker && npm ci)" >&2; exit 1; }
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext --enable-exception-handling build/index_bg.wasm -o build/index_bg.wasm.opt
  mv build/index_bg.wasm.opt build/index_bg.wasm
fi
ls -l build/index.js build/index_bg.wasm >&2

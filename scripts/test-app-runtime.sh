#!/usr/bin/env bash
# The web app's browser runtime (app/src/browser) end to end:
#   1. the IndexedDB layer cache and the worker's key resolution in headless Chromium
#      (wasm-bindgen-test: app/tests/idb_cache.rs, app/tests/browser_keys.rs)
#   2. tests/e2e-app/runtime.test.mjs: the built app served by the worker in bare workerd
#      converts and verifies in its Web Worker against a loopback docker-registry.
# Builds what is missing: the app (scripts/build-app.sh into KILN_APP_DIST, default dist/), the
# worker (scripts/run-worker.sh builds it when stale), the demo_images example.
# Env: KILN_APP_DIST (an already built app), KILN_DEMO_IMAGES (the example binary).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p kiln-app --target wasm32-unknown-unknown --test idb_cache --test browser_keys
export KILN_APP_DIST=${KILN_APP_DIST:-dist}
[ -f "$KILN_APP_DIST/index.html" ] || scripts/build-app.sh >/dev/null
if [ -z "${KILN_DEMO_IMAGES:-}" ]; then
  cargo build -q -p kiln-tests --example demo_images
fi
if [ ! -f worker/build/index_bg.wasm ] || \
   [ -n "$(find worker/src worker/Cargo.toml Cargo.lock -newer worker/build/index_bg.wasm -print -quit)" ]; then
  scripts/build-worker.sh
fi
(cd tests/e2e-app && node --test --test-concurrency=1 --test-reporter=spec runtime.test.mjs)

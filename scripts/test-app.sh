#!/usr/bin/env bash
# The web app's tests:
#   1. the WebCryptoSigner (and the browser runtime's parts) in headless Chromium
#      (wasm-bindgen-test)
#   2. builds dist/ (scripts/build-app.sh), serves it on a loopback port with Python's
#      static server, and drives every page with playwright-core in Debian's chromium
#      (tests/e2e-app/app.test.mjs)
#   3. real conversions and verifications in the page (tests/e2e-app/convert.test.mjs):
#      builds the native `kiln`, the demo_images example (pushes the busybox sample and
#      the fixture runtime) and the worker (scripts/build-worker.sh, when its sources are
#      newer); the test starts docker-registry (plain and basic auth) on loopback, the
#      worker in workerd serving dist/ with KILN_ALLOW_LOOPBACK_REGISTRIES=1, the
#      allowlist, the runtime image and KILN_DEFAULT_SIGNING_KEY, and a recording proxy
#      in front of it; and tests/e2e-app/runtime.test.mjs: the browser runtime's API
#      (the page's Web Worker) against the same parts: same identities and digest as
#      POST /convert-image, a second run from the IndexedDB cache, cancel, API errors;
#      hostile.test.mjs: the page through the fault front (examples fault_front,
#      hostile_images): 20% faults succeed with one retry event per fault, 100% fail with
#      no tag, the deep-path and gzip bombs refused with the Web Worker's memory flat;
#      approvals.test.mjs: the Approvals page against the worker's operator API (admin
#      token): a MANAGER_CA conversion approved and revoked, wrong tokens' reasons and no
#      token shown anywhere, an image registered from its fields and from its verify report
#      (a failed report refused), record times shown.
# Screenshots go to target/app-screenshots/.
# Env: KILN_APP_SKIP_WASM_TESTS=1 skips step 1; KILN_APP_SKIP_CONVERT=1 skips step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "${KILN_APP_SKIP_WASM_TESTS:-0}" != 1 ]; then
  cargo test --release -p kiln-app --target wasm32-unknown-unknown --tests
fi
dist=$(scripts/build-app.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
python3 -m http.server --bind 127.0.0.1 --directory "$dist" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  sleep 0.1
done
mkdir -p target/app-screenshots
(cd tests/e2e-app && KILN_APP_URL="http://127.0.0.1:$port/" \
  KILN_REPO="$ROOT" node --test --test-reporter=spec app.test.mjs)
kill "$server" 2>/dev/null || true

[ "${KILN_APP_SKIP_CONVERT:-0}" = 1 ] && exit 0
cargo build -q -p kiln --bin kiln
cargo build -q -p kiln-tests --example demo_images --example hostile_images --example fault_front
scripts/build-worker.sh --if-stale
(cd tests/e2e-app && KILN_REPO="$ROOT" KILN_DIST="$dist" KILN_WORKER_NO_BUILD=1 \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" \
  KILN_APP_DIST="$dist" node --test --test-reporter=spec --test-concurrency=1 \
    convert.test.mjs runtime.test.mjs hostile.test.mjs approvals.test.mjs)

#!/usr/bin/env bash
# The web app's tests:
#   1. the WebCryptoSigner in headless Chromium (wasm-bindgen-test)
#   2. builds dist/ (scripts/build-app.sh), serves it on a loopback port with Python's
#      static server, and drives every page with playwright-core in Debian's chromium
#      (tests/e2e-app/app.test.mjs). Screenshots go to target/app-screenshots/.
# Env: KILN_APP_SKIP_WASM_TESTS=1 skips step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  KILN_REPO="$(cd ../.. && pwd)" node --test --test-reporter=spec app.test.mjs)

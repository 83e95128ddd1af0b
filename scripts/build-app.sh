#!/usr/bin/env bash
# Builds the web app (app/) with Trunk into dist/ (offline, release) and prints its path.
# Needs trunk 0.21.14, wasm-bindgen-cli (= Cargo.lock's wasm-bindgen) and wasm-opt 132
# from npm binaryen (tests/e2e-app/node_modules/.bin): scripts/install-deps.sh installs them.
# Env: KILN_APP_DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${KILN_APP_DIST:-dist}
export PATH="$PWD/tests/e2e-app/node_modules/.bin:$HOME/.cargo/bin:$PATH"
for tool in trunk wasm-bindgen wasm-opt; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-app.sh: $tool not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
done
trunk build --offline --release --dist "$dist" >&2
echo "$PWD/$dist"

#!/usr/bin/env bash
# Cargo's runner for wasm32 tests (.cargo/config.toml): wasm-bindgen-test-runner, which
# runs them in headless Chromium through chromedriver, inside a private temp dir that is
# removed afterwards. chromedriver puts each browser session's profile (up to ~36 MB) in
# the temp dir and leaves it there when the runner stops it.
set -euo pipefail
tmp=$(mktemp -d -t kiln-wasm-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
TMPDIR="$tmp" wasm-bindgen-test-runner "$@"

#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs native and wasm tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

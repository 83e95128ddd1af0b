#!/usr/bin/env bash
# Builds the static test-only fixture loader (tests/fixture-loader: stands in for
# Gramine's loaders in the fixture runtime image) and prints the binary's path on stdout.
# Same recipe as scripts/build-launcher.sh (musl, else glibc crt-static).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${KILN_LAUNCHER_TARGET_DIR:-target/launcher-static}
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
musl=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
   || rustup target add "$musl" >&2; then
  target=$musl
  cargo build --release --quiet -p kiln-fixture-loader --target "$target" --target-dir "$target_dir" >&2
else
  target=x86_64-unknown-linux-gnu
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --quiet -p kiln-fixture-loader --target "$target" --target-dir "$target_dir" >&2
fi
echo "$(pwd)/$target_dir/$target/release/kiln-fixture-loader"

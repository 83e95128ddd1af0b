#!/usr/bin/env bash
# Builds the static kiln-init (init/: runs inside the enclave as Gramine's libos.entrypoint
# when a conversion requests certificates; it goes into the runtime layer next to
# kiln-launcher) and prints the binary's path on stdout. Same recipe as
# scripts/build-launcher.sh (musl, else glibc crt-static); pure Rust, so no C toolchain
# for the target is needed.
# Env: KILN_LAUNCHER_TARGET_DIR (default target/launcher-static).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${KILN_LAUNCHER_TARGET_DIR:-target/launcher-static}
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
musl=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
   || rustup target add "$musl" >&2; then
  target=$musl
  cargo build --release --quiet -p kiln-init --bin kiln-init --target "$target" --target-dir "$target_dir" >&2
else
  target=x86_64-unknown-linux-gnu
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --quiet -p kiln-init --bin kiln-init --target "$target" --target-dir "$target_dir" >&2
fi
bin="$target_dir/$target/release/kiln-init"
if command -v file >/dev/null && ! file "$bin" | grep -q 'static'; then
  echo "build-init.sh: $bin is not statically linked" >&2
  exit 1
fi
echo "$(pwd)/$bin"

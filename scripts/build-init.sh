#!/usr/bin/env bash
# Builds the static kiln-init (init/: runs inside the enclave as Gramine's libos.entrypoint
# when a conversion requests certificates; it goes into the runtime layer next to
# kiln-launcher) and prints the binary's path on stdout. Same recipe as
# scripts/build-launcher.sh (musl, else glibc crt-static: lib.sh's build_static); pure Rust
# apart from ring (https to a MANAGER_CA manager), whose C/asm build_static compiles with the
# host's gcc when no musl-gcc is installed.
# Env: KILN_LAUNCHER_TARGET_DIR (default target/launcher-static).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build_static kiln-init -p kiln-init --bin kiln-init

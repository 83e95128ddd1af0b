#!/usr/bin/env bash
# Builds the static kiln-launcher (no libc needed at run time: it goes into the runtime
# layer and must run in scratch/busybox images) and prints the binary's path on stdout.
# Prefers the musl target (lib.sh's build_static); falls back to glibc with crt-static (also static-pie, and safe
# here because the launcher calls nothing that needs NSS or dlopen).
# Env: KILN_LAUNCHER_TARGET_DIR (default target/launcher-static).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build_static kiln-launcher -p kiln-launcher

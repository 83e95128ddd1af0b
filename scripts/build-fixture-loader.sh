#!/usr/bin/env bash
# Builds the static test-only fixture loader (tests/fixture-loader: stands in for
# Gramine's loaders in the fixture runtime image) and prints the binary's path on stdout.
# Same recipe as scripts/build-launcher.sh (musl, else glibc crt-static: lib.sh's build_static).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build_static kiln-fixture-loader -p kiln-fixture-loader

#!/usr/bin/env bash
# kiln's whole test suite, as CI runs it (.ci/run calls exactly this).
#   1. installs what the tests need (scripts/install-deps.sh)
#   2. formatting, lints (native and wasm32) and rustdoc links
#   3. native tests of every crate: unit, vectors, property tests against Fortanix's sgxs,
#      real registries on loopback, runc
#   4. the engine's wasm tests in headless Chromium (same vectors, scan and writer)
#   5. the worker in workerd (CORS proxy) against real registries, from headless Chromium
#   6. the web app: wasm tests (WebCrypto signer, IndexedDB), Trunk build, e2e in Chromium
# The last line is the total over every runner (cargo's and wasm-bindgen-test's
# `test result:` lines, node's test runner summaries): `N passed, N failed`. It is printed
# also when a step fails (counting what ran); the exit code is the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The runc tests must run, not skip, in the full suite (CI is root with runc installed).
export KILN_REQUIRE_RUNC=1
# CI builds a clean clone once: incremental caches would only fill its disk (20 of the
# 52 GB of a long-lived debug target here).
export CARGO_INCREMENTAL=0
# Whatever the suite's tools leave in the temp dir goes to one private dir, removed at the
# end. (chromedriver's Chromium profiles, up to 36 MB per wasm test binary, are already
# removed by scripts/wasm-test-runner.sh.)
suite_tmp=$(mktemp -d -t kiln-suite.XXXXXX)
export TMPDIR="$suite_tmp"
counts="$suite_tmp/test-counts"
mkdir -p "$counts"

step() { printf '\n==== %s\n' "$*"; }

# Runs a test runner, its output also kept in $counts/<n>.log for the total.
counted() {
  local log
  log="$counts/$(printf '%02d' "$(find "$counts" -name '*.log' | wc -l)").log"
  "$@" 2>&1 | tee "$log"
}

# Sums the counts of every runner's log: `N passed, N failed`.
total() {
  find "$counts" -name '*.log' -print0 2>/dev/null | sort -z | xargs -0 -r cat |
    sed 's/\x1b\[[0-9;]*m//g' | awk '
      /^test result: / {
        for (i = 1; i <= NF; i++) {
          if ($(i + 1) ~ /^passed;?$/) p += $i
          if ($(i + 1) ~ /^failed;?$/) f += $i
        }
        next
      }
      # node --test: spec reporter "ℹ pass 3", TAP "# pass 3"; cancelled tests fail.
      /^(ℹ|#) (pass|fail|cancelled) [0-9]+$/ {
        if ($2 == "pass") p += $3; else f += $3
      }
      END { printf "%d passed, %d failed\n", p, f }'
}

finish() {
  local rc=$?
  local line
  line=$(total)
  rm -rf "$suite_tmp"
  echo "$line"
  exit "$rc"
}
trap finish EXIT

step "free disk (a clean build of the suite used 11 GB of target/ at most)"
df -h . "$TMPDIR" 2>/dev/null || true
free_kb=$(df -Pk . 2>/dev/null | awk 'NR == 2 { print $4 }' || true)
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((12 * 1024 * 1024)) ] && [ ! -d target/debug ]; then
  echo "warning: $((free_kb / 1024)) MB free here; a clean build of the suite needs about 12 GB" >&2
fi

step "install dependencies"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (native, all targets)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy (engine, wasm32)"
cargo clippy -p kiln-engine --target wasm32-unknown-unknown --lib --tests -- -D warnings

step "cargo doc (no broken or private links in the docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p kiln-engine -p kiln-native \
    -p kiln-launcher -p kiln -p kiln-init -p kiln-tests -p kiln-fixture-loader -p kiln-igzip -p kiln-macros
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --target wasm32-unknown-unknown \
    -p kiln-worker -p kiln-app

step "native tests"
counted cargo test --workspace

step "wasm tests in headless Chromium"
counted cargo test --release -p kiln-engine --target wasm32-unknown-unknown --tests

step "worker: wasm clippy, unit tests, build, workerd tests against real registries and Chromium"
counted scripts/test-worker.sh

step "cargo clippy (app, wasm32)"
cargo clippy -p kiln-app --target wasm32-unknown-unknown --all-targets -- -D warnings

step "web app: wasm tests, build, e2e in headless Chromium"
counted scripts/test-app.sh

step "disk used by the build"
du -sh target 2>/dev/null || true

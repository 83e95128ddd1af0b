#!/usr/bin/env bash
# Installs everything kiln's build and test suite use on a fresh Debian (bookworm) machine.
# Idempotent: each step checks first, so a warm machine spends a few seconds here.
#
#   scripts/install-deps.sh [--convert-only]
#
# --convert-only: only what building `kiln` and the demo's conversion need (the C tools
# for ISA-L, docker-registry, busybox-static, curl, the musl target): no browser, node,
# wasm-bindgen, worker-build or trunk. scripts/demo.sh runs this first.
#
# apt waits up to 5 minutes for a dpkg lock another apt user holds
# (-o DPkg::Lock::Timeout=300), and a failing apt-get says which packages and why.
set -euo pipefail
cd "$(dirname "$0")/.."

convert_only=0
for a in "$@"; do
  case "$a" in
    --convert-only) convert_only=1 ;;
    *) echo "usage: scripts/install-deps.sh [--convert-only]" >&2; exit 2 ;;
  esac
done

log() { printf 'install-deps: %s\n' "$*" >&2; }

# apt-get install "$@", waiting for a busy dpkg lock; on failure, says what failed.
apt_install() {
  local apt=(apt-get -o DPkg::Lock::Timeout=300)
  [ "$(id -u)" = 0 ] || apt=(sudo "${apt[@]}")
  log "apt-get install $* (waits up to 5 min for another apt/dpkg to finish)"
  local rc=0
  "${apt[@]}" update -qq || rc=$?
  if [ "$rc" != 0 ]; then
    log "error: apt-get update failed (exit $rc) while installing $*; if another apt or dpkg" \
        "is still running (unattended-upgrades, a second install-deps.sh), wait for it and rerun"
    exit "$rc"
  fi
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "$@" \
    >/dev/null || rc=$?
  if [ "$rc" != 0 ]; then
    log "error: apt-get install $* failed (exit $rc); if another apt or dpkg holds the lock" \
        "for more than 5 minutes, wait for it and rerun scripts/install-deps.sh"
    exit "$rc"
  fi
}

# Debian packages: C libs for the sgxs test oracle (openssl), the tools the isal-sys crate
# builds Intel ISA-L with (kiln-igzip: native gzip inflate), the browser for wasm tests,
# patchelf for `kiln runtime pack`,
# the real registry, image tools and runc for end-to-end tests.
APT_PACKAGES=(
  pkg-config libssl-dev
  make autoconf automake libtool nasm
  docker-registry busybox-static curl
)
if [ "$convert_only" = 0 ]; then
  APT_PACKAGES+=(
    chromium chromium-driver
    skopeo umoci runc apache2-utils
    jq debootstrap
    patchelf
  )
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# The launcher is a static binary (musl) that runs in scratch/busybox images (the demo's
# fixture runtime carries it too).
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

[ "$convert_only" = 1 ] && exit 0

# The wasm target for the engine's browser tests and the front ends.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen version in Cargo.lock exactly.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ -n "$want" ] && [ "$want" != "$have" ]; then
  log "cargo install wasm-bindgen-cli $want (a few minutes, once)"
  # Without --locked: its own lockfile pins a crate version the registry no longer serves.
  cargo install -q wasm-bindgen-cli --version "$want"
fi

# ---------------------------------------------------------------------------------------------
# Worker (worker/, kiln-worker): worker-build for the wasm bundle, and from the npm registry
# (worker/package-lock.json) workerd to run it locally, binaryen 132 (optional wasm-opt) and
# playwright-core to drive Debian's chromium. Never downloads a browser.
# The worker tests also use openssl (token-server certificate) and htpasswd (apache2-utils, above).
worker_missing=()
command -v node >/dev/null && command -v npm >/dev/null || worker_missing+=(nodejs npm)
command -v openssl >/dev/null || worker_missing+=(openssl)
if [ ${#worker_missing[@]} -gt 0 ]; then
  apt_install "${worker_missing[@]}"
fi
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "0.8.7" ]; then
  log "cargo install worker-build 0.8.7 (several minutes, once)"
  cargo install -q worker-build --version 0.8.7
fi
if [ ! -x worker/node_modules/.bin/workerd ] || [ ! -d worker/node_modules/playwright-core ] \
   || [ worker/package-lock.json -nt worker/node_modules/.package-lock.json ]; then
  log "npm ci in worker/ (workerd, binaryen, playwright-core)"
  (cd worker && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- web app (app/): Trunk and the npm tools of its e2e tests ---------------------------
# trunk 0.21.14 (0.22 needs a newer rustc); --locked builds it with its own lockfile.
if [ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "0.21.14" ]; then
  log "cargo install trunk 0.21.14 (about 9 minutes, once)"
  cargo install -q trunk --version 0.21.14 --locked
fi
# playwright-core (drives Debian's chromium; never downloads a browser) and binaryen's
# wasm-opt 132 for Trunk, pinned by tests/e2e-app/package-lock.json.
if ! [ -x tests/e2e-app/node_modules/.bin/wasm-opt ] \
   || ! [ -d tests/e2e-app/node_modules/playwright-core ]; then
  if ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  log "npm ci in tests/e2e-app"
  (cd tests/e2e-app && npm ci --no-audit --no-fund --loglevel=error)
fi

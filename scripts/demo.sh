#!/usr/bin/env bash
# kiln's first command: convert a sample image on this machine, registry to registry.
#
#   scripts/demo.sh [--keep] [--no-serve]
#
#   --no-serve  stop after the conversion (no web app build, nothing left running)
#   --keep      leave the registry (and its data) running after the script ends
#
# 1. the conversion, first: installs only what it needs (scripts/install-deps.sh
#    --convert-only), builds kiln and the demo's image builder (compiler output goes to a
#    log file, one status line on the terminal), starts a local docker-registry on a free
#    loopback port (data in a temp dir), builds the sample busybox image without a
#    container engine, builds and pushes the FIXTURE runtime image, converts the sample
#    with `kiln convert` and prints the response JSON, then what each field means;
# 2. unless --no-serve: installs the web tools (the rest of scripts/install-deps.sh:
#    wasm-bindgen, worker-build, trunk, node packages), builds the web app and the worker
#    and serves both on one loopback origin until Ctrl-C. The worker is configured with
#    the demo's runtime image, registry (its only allowlisted one), the key the CLI just
#    signed with, and an API token for its edge API (`KILN_API_TOKENS`); the demo prints
#    how to try the page and a curl of `POST /convert-image`.
#
# The fixture runtime is NOT Gramine: its sgx/libpal.so is a synthetic test PAL (so the
# measurements are real computations over a fake PAL) and its loaders are a test stand-in.
# For a real runtime, pack a Gramine v1.9 install with `kiln runtime pack` and pass it as
# `--runtime REF` to `kiln convert`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

keep=0
serve=1
worker_pid=
registry_pid=
host=
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    --no-serve) serve=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/demo.sh [--keep] [--no-serve]" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
say() { printf '== [%3ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }

work=$(mktemp -d -t kiln-demo.XXXXXX)
buildlog="$work/build.log"
cleanup() {
  local rc=$?
  [ -z "$worker_pid" ] || kill "$worker_pid" 2>/dev/null || true
  if [ "$keep" = 1 ] && [ -n "$registry_pid" ]; then
    echo "registry left running: pid $registry_pid on $host (data in $work)" >&2
  else
    [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
    [ -z "$registry_pid" ] || wait "$registry_pid" 2>/dev/null || true
    if [ "$rc" != 0 ] && [ -s "$buildlog" ]; then
      cp "$buildlog" "${TMPDIR:-/tmp}/kiln-demo-build.log" 2>/dev/null &&
        echo "demo failed (exit $rc); the build log is in ${TMPDIR:-/tmp}/kiln-demo-build.log" >&2
    fi
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Runs "$@" with its output in the build log; on failure, shows the log's tail.
quiet() {
  local what=$1
  shift
  local t0 rc=0
  t0=$(date +%s)
  printf '   %s ... ' "$what" >&2
  echo "==== $what: $*" >>"$buildlog"
  "$@" >>"$buildlog" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    echo "FAILED (exit $rc)" >&2
    echo "---- the last lines of $buildlog:" >&2
    tail -n 30 "$buildlog" >&2
    exit "$rc"
  fi
  echo "done ($(($(date +%s) - t0)) s)" >&2
}

say "installing what the conversion needs (scripts/install-deps.sh --convert-only)"
quiet "system packages and the musl target" scripts/install-deps.sh --convert-only

# The dev profile, as the test suite: it compiles in about half the time of --release, its
# crypto crates are optimised anyway (Cargo.toml), the sample converts in about a second,
# and scripts/test.sh reuses these builds instead of filling another GB of target/.
say "building kiln and the demo's image builder (a first build takes a few minutes; log: $buildlog)"
quiet "cargo build -p kiln" cargo build -p kiln
quiet "cargo build the demo_images example" cargo build -p kiln-tests --example demo_images
kiln=$ROOT/target/debug/kiln

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: "$host", secret: kiln-demo}
YML
say "starting docker-registry on $host (data in $work)"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$host/v2/" >/dev/null

say "pushing the sample image and the FIXTURE runtime image"
echo "   NOTE: kiln/runtime:fixture is a fixture runtime with a synthetic PAL, not Gramine." >&2
quiet "demo_images $host (builds the static launcher, kiln-init, fixture loader)" \
  "$ROOT/target/debug/examples/demo_images" "$host"

say "kiln convert --input $host/sample/busybox:1 --output $host/sample/busybox-sgx:1"
# Its progress lines go to the log; the response JSON to a file, printed below.
echo "==== kiln convert" >>"$buildlog"
rc=0
"$kiln" convert \
  --input "$host/sample/busybox:1" \
  --output "$host/sample/busybox-sgx:1" \
  --runtime "$host/kiln/runtime:fixture" \
  --insecure-registry "$host" \
  --state-dir "$work/state" \
  --no-bars >"$work/response.json" 2>>"$buildlog" || rc=$?
if [ "$rc" != 0 ]; then
  echo "kiln convert failed (exit $rc):" >&2
  cat "$work/response.json" >&2
  tail -n 5 "$buildlog" >&2
  exit "$rc"
fi
say "converted in $(($(date +%s) - start)) s from the start of the demo"

cat >&2 <<'TXT'

What the response says:
  newImage    the converted image (it runs the same app, inside an SGX enclave under Gramine)
  imageSHA    short image id: the first 12 hex digits of the image's config digest, as
              `docker images` shows it
  digest      the manifest digest (sha256:...): what `docker pull IMAGE@DIGEST` pins
  imageSize   config plus every layer, bytes
  mrenclave   the SGX1 enclave's measurement (MRENCLAVE): a hash of everything loaded
              into the enclave; a remote verifier compares it with an attestation quote
  mrenclave2  the same for SGX2 machines (EDMM: enclave memory added on demand), which
              the launcher picks when the CPU supports it
  mrsigner    hash of the signing key's modulus (MRSIGNER): who signed the enclave (here
              the key kiln generated in the demo's state dir)
  isvprodid, isvsvn   product id and security version the signer assigned (default 0)
  memSize     the enclave size in bytes (memSize rounded up to a power of two)
  warnings    things to know about the conversion, if any
The measurements are of the FIXTURE runtime (a synthetic PAL), so no real SGX machine
will run this image; with a Gramine runtime (`kiln runtime pack`) they are the real ones.
Check them: kiln verify IMAGE --insecure-registry HOST

TXT
cat "$work/response.json"

if [ "$serve" = 0 ]; then
  if [ "$keep" = 1 ]; then
    say "done (--no-serve). Try: $kiln verify $host/sample/busybox-sgx:1 --insecure-registry $host"
    echo "   the registry keeps running (--keep); stop it with: kill $registry_pid" >&2
  else
    say "done (--no-serve); the registry stops now (--keep leaves it running to try kiln verify)"
  fi
  echo "   for your own images, build an optimised kiln: cargo install --path cli (see README)" >&2
  exit 0
fi

say "now the web app: installing its tools (wasm-bindgen, worker-build, trunk: 10-15 min once; log: $buildlog)"
quiet "scripts/install-deps.sh" scripts/install-deps.sh
quiet "building the web app (scripts/build-app.sh)" scripts/build-app.sh
quiet "building the worker (scripts/build-worker.sh)" scripts/build-worker.sh --if-stale

# The edge API's token: only its SHA-256 goes to the worker.
token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
token_hash=$(printf '%s' "$token" | sha256sum | awk '{print $1}')
key="$work/state/keys/default.pem"
wport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting the worker on 127.0.0.1:$wport (the app, and a registry proxy allowed to reach $host only)"
KILN_REGISTRY_ALLOWLIST="http://$host" KILN_ALLOW_LOOPBACK_REGISTRIES=1 \
  KILN_RUNTIME_IMAGE="$host/kiln/runtime:fixture" \
  KILN_DEFAULT_SIGNING_KEY_FILE="$key" \
  KILN_API_TOKENS="demo $token_hash $host/sample" \
  KILN_WORKER_NO_BUILD=1 \
  scripts/run-worker.sh "$wport" >"$work/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$wport/healthz" >/dev/null 2>&1 && break
  kill -0 "$worker_pid" 2>/dev/null || { tail -n 20 "$work/worker.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$wport/healthz" >/dev/null

cat >&2 <<MSG

Try it (the page converts in your browser; the worker only relays registry traffic):
  1. open http://127.0.0.1:$wport/
  2. input image  $host/sample/busybox:1
     output image $host/sample/busybox-web:1
     (only $host is on this worker's registry allowlist)
  3. pick or generate a signing key in the page, then Convert: the mrenclave values
     equal the CLI's above (they do not depend on the key); mrsigner is your key's.
The edge API (the worker converts, signing with the demo's key), with the demo's token:
  curl -sS -X POST http://127.0.0.1:$wport/convert-image \\
    -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \\
    -d '{"inputImageName":"$host/sample/busybox:1","outputImageName":"$host/sample/busybox-api:1"}'
Verify any of them:
  $kiln verify $host/sample/busybox-sgx:1 --insecure-registry $host

Serving until Ctrl-C (worker log: $work/worker.log).
MSG
wait "$worker_pid"

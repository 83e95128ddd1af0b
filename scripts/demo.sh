#!/usr/bin/env bash
# kiln's first command: convert a sample image on this machine, registry to registry.
#
#   scripts/demo.sh [--keep] [--no-serve]
#
# Installs what it needs (scripts/install-deps.sh), builds kiln, starts a local
# docker-registry on a free loopback port (in a temp dir; stopped on exit unless --keep),
# builds the sample busybox image without a container engine, builds and pushes the
# FIXTURE runtime image, converts the sample with `kiln convert` and prints the response;
# then builds the web app, starts the worker (app + registry proxy on one origin) and prints
# the app's URL, serving until Ctrl-C (`--no-serve` stops after the conversion).
#
# The fixture runtime is NOT Gramine: its sgx/libpal.so is a synthetic test PAL (so the
# measurements are real computations over a fake PAL) and its loaders are a test stand-in.
# For a real runtime, pack a Gramine v1.9 install with `kiln runtime pack` and pass it as
# `--runtime REF` to `kiln convert`.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
serve=1
worker_pid=
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    --no-serve) serve=0 ;;
    *) echo "usage: scripts/demo.sh [--keep] [--no-serve]" >&2; exit 2 ;;
  esac
done
say() { printf '\n== %s\n' "$*" >&2; }

say "installing dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

say "building kiln"
cargo build --release --quiet -p kiln
kiln=target/release/kiln

work=$(mktemp -d -t kiln-demo.XXXXXX)
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
cleanup() {
  if [ "$keep" = 1 ]; then
    echo "registry left running: pid $registry_pid on $host (data in $work)" >&2
  else
    [ -z "$worker_pid" ] || kill "$worker_pid" 2>/dev/null || true
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$host/v2/" >/dev/null

say "building and pushing the sample image and the FIXTURE runtime image"
echo "NOTE: kiln/runtime:fixture is a fixture runtime with a synthetic PAL, not Gramine." >&2
echo "      For a real runtime: kiln runtime pack (a Gramine v1.9 install), then --runtime REF." >&2
cargo run --release --quiet -p kiln-tests --example demo_images -- "$host"

say "kiln convert $host/sample/busybox:1 -> $host/sample/busybox-sgx:1"
"$kiln" convert \
  --input "$host/sample/busybox:1" \
  --output "$host/sample/busybox-sgx:1" \
  --runtime "$host/kiln/runtime:fixture" \
  --insecure-registry "$host" \
  --state-dir "$work/state" \
  | tee "$work/response.json"

[ "$serve" = 1 ] || exit 0

say "building the web app (scripts/build-app.sh)"
scripts/build-app.sh >/dev/null
wport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting the worker on 127.0.0.1:$wport (the app, and a registry proxy allowed to reach $host only)"
# The edge API's conversions need a token (KILN_API_TOKENS holds its SHA-256, never the token).
api_token=$(openssl rand -hex 32)
KILN_API_TOKENS="demo $(printf %s "$api_token" | sha256sum | cut -d' ' -f1)" \
KILN_REGISTRY_ALLOWLIST="http://$host" KILN_ALLOW_LOOPBACK_REGISTRIES=1 \
  scripts/run-worker.sh "$wport" >"$work/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$wport/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$wport/healthz" >/dev/null
cat >&2 <<MSG

  the app:             http://127.0.0.1:$wport/
  the registry proxy:  http://127.0.0.1:$wport/proxy/$host/v2/
  the edge API token:  $api_token   (curl -H "Authorization: Bearer $api_token" .../convert-image)
  the converted image: $host/sample/busybox-sgx:1   (try: $kiln verify $host/sample/busybox-sgx:1 --insecure-registry $host)

Serving until Ctrl-C.
MSG
wait "$worker_pid"

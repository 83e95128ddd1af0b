#!/usr/bin/env bash
# Runs kiln's worker locally in bare workerd (npm `workerd`, installed in worker/node_modules by
# scripts/install-deps.sh), building it first if its sources are newer than worker/build/.
#
#   scripts/run-worker.sh PORT
#
# Serves http://127.0.0.1:PORT (address: KILN_WORKER_ADDRESS, default 127.0.0.1). The process
# becomes workerd itself (exec), so its pid is the worker's. Configuration, from the environment:
#   KILN_REGISTRY_ALLOWLIST          registries (and token servers, blob stores) the proxy may reach:
#                                    "[http://|https://]host[:port],..."; no scheme = https; "*.x.com"
#                                    covers subdomains. Empty: the proxy reaches nothing.
#   KILN_ALLOW_LOOPBACK_REGISTRIES   1: allow loopback registries (127/8, ::1, localhost) - tests only.
#                                    Private and link-local addresses are refused regardless.
#   KILN_ALLOWED_ORIGINS             page origins allowed to call the worker: "*" or
#                                    "https://a.example,http://127.0.0.1:9000"; empty: own origin only.
#   KILN_PROXY_TIMEOUT_SECS          seconds an upstream has to answer (no request body); default 30.
#   KILN_PROXY_UPLOAD_TIMEOUT_SECS   same for requests with a body (uploads); default 300.
#   KILN_BROWSER_IDLE_TIMEOUT_SECS   seconds a response may go without a byte in the web app's
#                                    transport before it fails (sent in /kiln-config.json); 300.
#   KILN_DEFAULT_SIGNING_KEY_FILE    PEM file of the service's default signing key, read into the
#                                    secret binding KILN_DEFAULT_SIGNING_KEY (POST /convert-image with
#                                    signingKey.default or none).
#   KILN_RUNTIME_IMAGE               reference of the Gramine runtime image (POST /convert-image).
#   KILN_KMS_URL                     Fortanix DSM base URL for signingKey.sdkms (its origin is the
#                                    KMS transport's own exemption; KILN_KMS_ENDPOINT: older name).
#   KILN_TWO_STEP_SECRET             secret (>= 16 bytes) authenticating the offline two-step's tokens
#                                    (POST /convert-image/prepare and /complete); unset: 500.
#   KILN_API_TOKENS                  secret: the API tokens of the conversion endpoints, one
#                                    "NAME SHA256HEX [OUTPUT-PREFIX ...]" per line (the token's hex
#                                    SHA-256, never the token). Unset: conversions are refused. E.g.
#                                      token=$(openssl rand -hex 32)      # give this to the caller
#                                      export KILN_API_TOKENS="me $(printf %s "$token" | sha256sum | cut -d' ' -f1)"
#                                      curl -H "Authorization: Bearer $token" -d @req.json .../convert-image
#   KILN_API_TOKENS_FILE             file read into KILN_API_TOKENS instead.
#   KILN_EDGE_ANONYMOUS=1            conversions without a token while KILN_API_TOKENS is unset:
#                                    DEVELOPMENT ONLY (anyone can sign with the default key).
#   KILN_MAX_ENCLAVE_SIZE            largest memSize a conversion may ask for; default 64G.
#   KILN_PROXY_SECRET                secret (optional): key of the proxy's signed token-realm links;
#                                    default: derived from the other secrets.
#   KILN_RATE_LIMIT_CONVERT_PER_MIN  conversions per API token per minute (default 10);
#   KILN_RATE_LIMIT_VERIFY_PER_MIN   /verify-image per client address (CF-Connecting-IP) (30);
#   KILN_RATE_LIMIT_PROXY_PER_MIN    /proxy requests per client address (3000). Counted by the
#                                    Durable Object RateLimiter (in memory here); 429 + Retry-After.
#   KILN_MANAGER_CA_KEY_FILE         PEM file of the MANAGER_CA key (ECDSA P-256), read into the secret
#                                    binding KILN_MANAGER_CA_KEY (POST /certificates/issue).
#   KILN_MANAGER_CA_CERT             the MANAGER_CA certificate, PEM text (KILN_MANAGER_CA_CERT_FILE: a file).
#   KILN_MANAGER_ALLOW_TCB           TCB statuses issuance accepts besides UpToDate, comma-separated.
#   KILN_PCCS_URL                    PCCS (or Intel PCS) base URL: POST /certificates/issue fetches the
#                                    collateral there when the request has none (its origin is that
#                                    fetch's own exemption); unset: such requests are a 500.
#   KILN_ATTEST_TEST_ROOT            TESTS ONLY: a PEM root that replaces Intel's SGX root for issuance
#                                    (quotes minted by tests/examples/mint_quote). Never in a deployment.
#   KILN_LIMIT_*                     the engine's image limits for this worker (docs/limits.md)
#   KILN_DEBUG_METRICS=1             serve GET /debug/metrics (the isolate's subrequest count and wasm
#                                    memory size): tests and scripts/bench-worker.sh only.
#   KILN_WORKERD_INSPECTOR=ADDR      start workerd with its inspector on ADDR (e.g. 127.0.0.1:9229;
#                                    scripts/bench-worker.sh reads the JS heap through it).
#   KILN_WORKERD_NETWORK=loopback    workerd may reach only loopback (tests: proves that nothing
#                                    leaves the machine even with public registries allowlisted).
#   KILN_WORKER_NO_BUILD=1           never build; fail if worker/build is missing.
#   KILN_ASSETS_DIR                  static files served at / (default: the web app's dist/ when
#                                    scripts/build-app.sh has built it, else worker/public).
# workerd's own network permissions follow the loopback switch: public only, unless loopback
# registries are allowed (then private/local too, and the worker's guard decides).
set -euo pipefail
PORT=${1:?usage: $0 PORT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W="$ROOT/worker"
WORKERD="$W/node_modules/.bin/workerd"
[ -x "$WORKERD" ] || { echo "run-worker: $WORKERD missing; run scripts/install-deps.sh" >&2; exit 1; }

wasm="$W/build/index_bg.wasm"
if [ "${KILN_WORKER_NO_BUILD:-0}" != 1 ]; then
  "$ROOT/scripts/build-worker.sh" --if-stale
fi
[ -f "$wasm" ] || { echo "run-worker: $wasm missing; run scripts/build-worker.sh" >&2; exit 1; }

if [ -n "${KILN_ASSETS_DIR:-}" ]; then
  ASSETS_DIR=$(cd "$KILN_ASSETS_DIR" && pwd)
elif [ -f "$ROOT/dist/index.html" ]; then
  ASSETS_DIR="$ROOT/dist"
else
  ASSETS_DIR="$W/public"
fi
# The secrets given as files; KILN_DEFAULT_SIGNING_KEY comes only from its file.
KILN_DEFAULT_SIGNING_KEY=""
if [ -n "${KILN_DEFAULT_SIGNING_KEY_FILE:-}" ]; then
  KILN_DEFAULT_SIGNING_KEY=$(cat "$KILN_DEFAULT_SIGNING_KEY_FILE")
fi
KILN_MANAGER_CA_KEY=""
if [ -n "${KILN_MANAGER_CA_KEY_FILE:-}" ]; then
  KILN_MANAGER_CA_KEY=$(cat "$KILN_MANAGER_CA_KEY_FILE")
fi
if [ -n "${KILN_MANAGER_CA_CERT_FILE:-}" ]; then
  KILN_MANAGER_CA_CERT=$(cat "$KILN_MANAGER_CA_CERT_FILE")
fi
if [ -n "${KILN_API_TOKENS_FILE:-}" ]; then
  KILN_API_TOKENS=$(cat "$KILN_API_TOKENS_FILE")
fi
# The worker's settings: each exported (empty when unset) and bound into workerd below.
SETTINGS=(KILN_REGISTRY_ALLOWLIST KILN_ALLOW_LOOPBACK_REGISTRIES KILN_ALLOWED_ORIGINS
          KILN_PROXY_TIMEOUT_SECS KILN_PROXY_UPLOAD_TIMEOUT_SECS KILN_BROWSER_IDLE_TIMEOUT_SECS
          KILN_RUNTIME_IMAGE
          KILN_KMS_ENDPOINT KILN_KMS_URL KILN_PCCS_URL KILN_DEFAULT_SIGNING_KEY
          KILN_API_TOKENS KILN_EDGE_ANONYMOUS KILN_MAX_ENCLAVE_SIZE KILN_PROXY_SECRET
          KILN_RATE_LIMIT_CONVERT_PER_MIN KILN_RATE_LIMIT_VERIFY_PER_MIN KILN_RATE_LIMIT_PROXY_PER_MIN
          KILN_DEBUG_METRICS KILN_TWO_STEP_SECRET
          KILN_MANAGER_CA_KEY KILN_MANAGER_CA_CERT KILN_MANAGER_ALLOW_TCB KILN_MANAGER_URL KILN_ATTEST_TEST_ROOT)
for v in "${SETTINGS[@]}"; do
  export "$v=${!v:-}"
done

case "$KILN_ALLOW_LOOPBACK_REGISTRIES" in
  1|true|yes) NET_ALLOW='"public", "private", "local"' ;;
  *) NET_ALLOW='"public"' ;;
esac
if [ "${KILN_WORKERD_NETWORK:-}" = loopback ]; then NET_ALLOW='"local"'; fi

# The config sits beside the modules (workerd resolves embeds relative to it); one per port,
# stale ones are removed.
CONFIG="$W/build/workerd.$PORT.capnp"
find "$W/build" -maxdepth 1 -name 'workerd.*.capnp' -mmin +120 -delete 2>/dev/null || true
bindings=""
# The settings, then the image limits (KILN_LIMIT_LAYER_ENTRIES=100000, ...; docs/limits.md):
# only those set.
for v in "${SETTINGS[@]}" $(env | sed -n 's/^\(KILN_LIMIT_[A-Z_]*\)=.\+$/\1/p'); do
  bindings+="    (name = \"$v\", fromEnvironment = \"$v\"),"$'\n'
done
cat > "$CONFIG" <<CAPNP
# Generated by scripts/run-worker.sh: kiln's worker in bare workerd.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "kiln", worker = .kilnWorker),
    (name = "internet", network = (allow = [$NET_ALLOW], tlsOptions = (trustBrowserCas = true))),
    (name = "assets", disk = (path = "$ASSETS_DIR", writable = false)),
  ],
  sockets = [(name = "http", address = "${KILN_WORKER_ADDRESS:-127.0.0.1}:$PORT", http = (), service = "kiln")],
);

const kilnWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["nodejs_compat"],
  bindings = [
$bindings    (name = "ASSETS", service = "assets"),
    (name = "KILN_RATE_LIMITER", durableObjectNamespace = "RateLimiter"),
    (name = "KILN_APPROVALS", durableObjectNamespace = "Approvals"),
  ],
  durableObjectNamespaces = [(className = "RateLimiter", uniqueKey = "kiln-rate-limiter"),
                             (className = "Approvals", uniqueKey = "kiln-approvals")],
  durableObjectStorage = (inMemory = void),
  globalOutbound = "internet",
);
CAPNP
exec "$WORKERD" serve "$CONFIG" ${KILN_WORKERD_INSPECTOR:+--inspector-addr="$KILN_WORKERD_INSPECTOR"}

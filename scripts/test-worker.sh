#!/usr/bin/env bash
# All of the worker's tests:
#   1. clippy of the worker crate for wasm32 (the handler only exists there) and native unit tests
#   2. the release build (scripts/build-worker.sh)
#   3. node's test runner over worker/test/: real registries (docker-registry: plain, basic,
#      bearer token + test token server) and the worker in bare workerd on loopback; pull and
#      push through the proxy, the guard, logs; CORS from headless Chromium on another origin;
#      the edge API (verify-image, convert-image) against the native `kiln convert`;
#      signingKey.sdkms against the stand-in DSM (example dsm_standin); the attacks of
#      SECURITY.md (security.test.mjs: API tokens, the proxy's protocol-only paths and headers
#      with Chromium, secrets in 400s, memSize and body limits, rate limits, Docker Hub names);
#      uploads.test.mjs: one streamed PUT per blob, subrequests counted at the registries;
#      hostile.test.mjs: the bombs of kiln_tests::bombs (example hostile_images) refused with
#      400s naming layer and limit, flat wasm memory, no tag; conversions through the fault
#      front (example fault_front): 20% faults succeed with a log line per retry, 100% fail.
#      manager.test.mjs: MANAGER_CA: conversions recorded as pending approvals, the operator API
#      (admin tokens), POST /certificates/issue with quotes under a TEST root (example mint_quote),
#      with or without collateral (then from KILN_PCCS_URL: a loopback PCCS stand-in).
#      manager-e2e.test.mjs: MANAGER_CA end to end: a MANAGER_CA conversion through the worker run
#      under runc (example run_attested: direct mode, /dev/attestation FIFO stand-in, host netns)
#      before approval, after approval (openssl verify) and after revocation. Root + runc, else a
#      loud SKIP (a failure with KILN_REQUIRE_RUNC=1).
# Needs scripts/install-deps.sh (worker-build, workerd, playwright-core, chromium, docker-registry).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo clippy -p kiln-worker --target wasm32-unknown-unknown --all-targets -- -D warnings
cargo test -q -p kiln-worker
scripts/build-worker.sh
# The edge API tests push the sample and fixture runtime (demo_images) and compare with `kiln convert`.
cargo build -q -p kiln --bin kiln
cargo build -q -p kiln-tests --example demo_images --example dsm_standin --example bench_edge_image \
  --example hostile_images --example fault_front --example mint_quote --example run_attested
cd worker
KILN_WORKER_NO_BUILD=1 node --test --test-concurrency=1 test/*.test.mjs

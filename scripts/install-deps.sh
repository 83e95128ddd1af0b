#!/usr/bin/env bash
# Installs what kiln's build and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
need_apt=()
# docker-registry (distribution 2.8), skopeo, umoci: the real-registry tests (tests/)
for pkg in pkg-config libssl-dev docker-registry skopeo umoci; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

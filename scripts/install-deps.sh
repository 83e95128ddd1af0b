#!/usr/bin/env bash
# Installs what kiln's build and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
need_apt=()
for pkg in pkg-config libssl-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# kiln-launcher's container tests (launcher/tests/runc.rs): runc and a static busybox.
need_apt=()
for pkg in runc busybox-static; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

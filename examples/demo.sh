#!/usr/bin/env bash
# One command for a fresh Debian 12 machine (as root): installs what is needed, builds, runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (containers need it): sudo bash examples/demo.sh" >&2; exit 1; fi
missing=()
for bin in runc containerd ctr busybox; do command -v "$bin" >/dev/null || missing+=("$bin"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq runc containerd busybox-static >/dev/null
fi
# Debian 12's own nodejs is 18; the shim needs Node.js 20 or newer (e.g. from NodeSource).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then echo "Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1; fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run demo

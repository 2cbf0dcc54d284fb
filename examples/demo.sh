#!/usr/bin/env bash
# One command for a fresh Debian 12 machine (as root): installs what is needed, builds, runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (containers need it): sudo bash examples/demo.sh" >&2; exit 1; fi
missing=()
for bin in runc containerd ctr busybox; do command -v "$bin" >/dev/null || missing+=("$bin"); done
if [ ${#missing[@]} -gt 0 ] || ! command -v node >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq runc containerd busybox-static nodejs npm >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run demo

#!/usr/bin/env bash
# Installs what the Node.js receiver's tests need (tests/it/client_node.rs runs them):
# Node.js 20 or later with npm, and the package's test-only dependency (express,
# pinned in package-lock.json) through `npm ci`. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

node_major() {
  node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'
}

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

major="$(node_major)"
if [[ -z "$major" || "$major" -lt 20 ]]; then
  echo "clients/node needs Node.js 20 or later; this machine has $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
echo "node $(node --version), npm $(npm --version)"

npm ci --no-audit --no-fund --loglevel=error

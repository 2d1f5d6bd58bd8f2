#!/usr/bin/env bash
# Installs what clients/go's tests need on a fresh Debian machine: the Go toolchain
# (1.19 or later). Nothing else: the package and its tests use the standard library
# only and run with GOPROXY=off. Idempotent.
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq golang-go
fi

version="$(go env GOVERSION)" # go1.19.8
minor="$(echo "$version" | sed -E 's/^go1\.([0-9]+).*/\1/')"
if ! [ "$minor" -ge 19 ] 2>/dev/null; then
  echo "clients/go needs Go 1.19 or later; found $version" >&2
  exit 1
fi
echo "clients/go: $version"

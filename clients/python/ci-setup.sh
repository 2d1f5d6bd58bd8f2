#!/usr/bin/env bash
# Installs what the Python receiver package's tests need (tests/it/client_python.rs runs
# them): a Python 3.9+ with venv, and in clients/python/.venv the pinned test tools.
# The package itself needs nothing beyond the standard library; the tests are run from
# source (pyproject.toml puts src/ on pytest's path). Idempotent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

# Test-only dependencies, pinned: the adapters' frameworks and their test clients
# (Starlette's TestClient wants httpx2), the build backend the packaging test builds a
# wheel with, and the checkers of the 3.9 floor and of the type annotations.
requirements=(
  pytest==9.2.0
  fastapi==0.165.0
  starlette==1.10.0
  httpx2==2.17.0
  flask==3.1.3
  werkzeug==3.1.8
  django==5.2.19
  setuptools==84.2.1
  vermin==1.9.2
  mypy==2.4.1
)

usable() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null
}
if ! usable; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
"$venv/bin/python" -m pytest --version

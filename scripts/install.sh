#!/usr/bin/env bash
# Set up sod100k in ./.venv (or $SOD100K_VENV): torch first, so that a machine without an
# NVIDIA GPU gets the CPU build (an unpinned `pip install torch` pulls a multi-GB CUDA
# build), then the package itself. Usage: scripts/install.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SOD100K_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${SOD100K_TORCH_VERSION:-2.13.0}
CPU_INDEX=${SOD100K_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip >/dev/null

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install -q "torch==${TORCH_VERSION}"
  # The CPU wheel: from a local wheel folder when pip is configured with one
  # (find-links), else from PyTorch's CPU index; its dependencies come from PyPI.
  elif pip install -q --no-index --no-deps "torch==${TORCH_VERSION}+cpu" 2>/dev/null; then
    pip install -q "torch==${TORCH_VERSION}+cpu"
  else
    pip install -q "torch==${TORCH_VERSION}+cpu" --extra-index-url "$CPU_INDEX"
  fi
fi

if [ "${1:-}" = "--dev" ]; then
  # ray: the tests of --ray (tests/test_ray_*.py) run in CI; the plain install stays lean.
  pip install -q -e ".[dev,ray]"
  # Headless Chromium for the browser tests (Debian/Ubuntu, as root); Playwright (in the
  # dev extra) drives it, since it cannot download its own browsers here.
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
     && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
      || echo "note: chromium not installed; browser tests will be skipped" >&2
  fi
else
  pip install -q -e .
fi
# The browser runtime: onnxruntime-web from npm, pinned by web/package-lock.json, for
# `sod100k export --web` and the served page's in-browser mode. Its two files a page
# loads are copied into the package (sod100k/web/runtime, not committed), so a wheel
# built from this checkout carries them. Without npm everything else still works.
if command -v npm >/dev/null 2>&1; then
  if npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null; then
    "$VENV/bin/python" -m sod100k.web --vendor >/dev/null
  else
    echo "note: npm ci failed; sod100k export --web will say what to install" >&2
  fi
else
  echo "note: npm not found; the browser bundle (sod100k export --web) needs onnxruntime-web" \
    "from npm: install Node.js/npm and rerun this script" >&2
fi
echo "sod100k installed in $VENV" >&2

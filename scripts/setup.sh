#!/usr/bin/env bash
# Creates .venv in the repository root with what thunder needs, and builds the C++ core and the
# extension in place (build/dev). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
PY=.venv/bin/python
# torch: the pinned CPU build when absent (any torch >= 2.4 already installed is kept).
if ! $PY -c "import torch" 2>/dev/null; then
  $PY -m pip install -q torch==2.13.0
fi
$PY -m pip install -q nanobind scikit-build-core cmake ninja pytest numpy
if [ "${THUNDER_BUILD_TESTS:-OFF}" = "ON" ] && [ ! -f /usr/include/gtest/gtest.h ]; then
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq libgtest-dev) >/dev/null 2>&1 || true
  fi
fi
export PATH="$PWD/.venv/bin:$PATH"
THUNDER_BUILD_TESTS=${THUNDER_BUILD_TESTS:-OFF} tools/build_inplace.sh

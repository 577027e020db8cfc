#!/usr/bin/env bash
# Runs every test: the C++ unit tests (GoogleTest, through ctest) and the Python tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
THUNDER_BUILD_TESTS=ON scripts/setup.sh
(cd build/dev && ctest --output-on-failure --no-tests=error -j2)
.venv/bin/python -m pytest tests -q -x -p no:cacheprovider "$@"

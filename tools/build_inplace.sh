#!/usr/bin/env bash
# Builds the C++ core and the extension module into build/dev and places _core.*.so inside thunder/,
# so the package runs from the source tree. Serialised with a lock: concurrent callers wait.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p build
exec 9>build/.dev.lock
flock 9
if [ ! -f build/dev/build.ninja ] || ! grep -q "THUNDER_BUILD_TESTS:BOOL=${THUNDER_BUILD_TESTS:-OFF}" build/dev/CMakeCache.txt 2>/dev/null; then
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" \
    -DTHUNDER_BUILD_TESTS="${THUNDER_BUILD_TESTS:-OFF}" >/dev/null
fi
ninja -C build/dev >&2
# Install by rename: a process that has the old module mapped keeps its file; overwriting it in place would
# crash that process.
for so in build/dev/csrc/_core*.so; do
  name=$(basename "$so")
  if ! cmp -s "$so" "thunder/$name"; then
    cp -f "$so" "thunder/.$name.tmp"
    mv -f "thunder/.$name.tmp" "thunder/$name"
  fi
done

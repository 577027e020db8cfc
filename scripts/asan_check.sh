#!/usr/bin/env bash
# The C++ core, its tests and the extension built with AddressSanitizer and UndefinedBehaviorSanitizer
# (build/asan, Debug, -O1), then: the C++ tests, and pytest against a copy of the package holding the
# sanitized extension (python itself is not sanitized: libasan and libubsan are preloaded; leak
# reports are off, torch's allocations would fill them). Arguments go to pytest; the default is the
# fuser's tests (generated kernels, layouts, the disk cache; about 9 minutes on 2 cores). The preload
# stays in the environment: the tests start python processes of their own that load the sanitized
# extension (and the compilers they run start with the runtimes too).
#   bash scripts/asan_check.sh
#   bash scripts/asan_check.sh tests/test_fusion.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
FUSER_TESTS=(tests/test_fusion.py tests/test_fusion_cuda.py tests/test_fusion_random.py
  tests/test_fusion_random_views.py tests/test_fusion_dropout.py tests/test_cache.py)
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTHUNDER_BUILD_TESTS=ON \
  -DPython_EXECUTABLE="$PY" \
  -DCMAKE_CXX_FLAGS="$SAN -O1" -DCMAKE_EXE_LINKER_FLAGS="$SAN" -DCMAKE_SHARED_LINKER_FLAGS="$SAN" >/dev/null
ninja -C build/asan >&2
./build/asan/csrc/thunder_tests
pkg=$(mktemp -d /tmp/thunder-asan-XXXX)
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$pkg"  # the tracked tree, no built module
cp build/asan/csrc/_core*.so "$pkg"/thunder/
cd "$pkg"
LD_PRELOAD="$(c++ -print-file-name=libasan.so) $(c++ -print-file-name=libubsan.so)" \
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  PYTHONPATH="$pkg" "$PY" -m pytest -q -p no:cacheprovider "${@:-${FUSER_TESTS[@]}}"

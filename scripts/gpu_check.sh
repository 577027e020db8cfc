#!/usr/bin/env bash
# The GPU machine's check, run at the repository root: builds the extension in place (cmake + ninja,
# no C++ tests, the image's python3), runs the CUDA-relevant test files, then the GPU fusion benchmark.
# Logs and results go under $OUT (default: build/gpu_check).
#   TESTS="tests/a.py tests/b.py"  the test files (default: below)
#   PYTEST_ARGS="-x"                 extra pytest arguments
#   PYTEST_SHARDS=4                  split each file's tests over this many pytest processes at once
#                                    (kernel compiles are most of the time, and they use one core each)
#   BENCH_ARGS="--quick"             arguments of benchmarks/fusion_gpu.py; BENCH=0 skips it
#                                    (a --quick run with torch.compile takes about 9 minutes on an
#                                    H200: add --no-compile or --only <text> to stay well inside
#                                    10 minutes with the tests)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"
PY=$(command -v python3)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Every kernel compiled during the check goes to a fresh cache (the disk-cache tests use their own).
export THUNDER_CACHE_DIR=${THUNDER_CACHE_DIR:-$(mktemp -d /tmp/thunder-cache-XXXX)}

{
  date
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  "$PY" -c 'import torch, sys; print(sys.version.split()[0], "torch", torch.__version__, torch.version.cuda, torch.cuda.is_available())'
  ls /usr/local/cuda/lib64/libnvrtc.so* 2>&1
  c++ --version 2>&1 | head -1; cmake --version | head -1
  env | grep -E "^(CC|CXX|CFLAGS|CXXFLAGS|LDFLAGS|CPPFLAGS|LD_PRELOAD|LD_LIBRARY_PATH)=" || true
} | tee "$OUT/env.txt"

t0=$(date +%s)
# The system compiler, whatever CC/CXX say: the GPU image's CXX (/opt/gcc) links libstdc++ statically
# and exports it, and two C++ runtimes in one process (torch's and the extension's) crash in iostreams.
if ! CC=cc CXX=c++ PYTHON="$PY" THUNDER_BUILD_TESTS=OFF tools/build_inplace.sh >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "gpu_check: build failed (log: $OUT/build.log)"
  exit 1
fi
echo "gpu_check: built in $(( $(date +%s) - t0 )) s"
ldd thunder/_core*.so | grep -E "stdc|gcc_s" | tee -a "$OUT/env.txt"
"$PY" -c 'from thunder.executors import fusionex as f; from thunder import _core; print("fusion on cuda:", _core.fuser_available("cuda"), "nvrtc", _core.fuser_nvrtc_version())'

DEFAULT_TESTS="tests/test_fusion_cuda.py tests/test_fusion.py tests/test_examples.py tests/test_sdpa.py \
tests/test_torchcompile.py tests/test_training.py tests/test_grad_autograd.py"
for f in $(grep -l "cuda" tests/test_*.py 2>/dev/null); do
  case " $DEFAULT_TESTS " in *" $f "*) ;; *) DEFAULT_TESTS="$DEFAULT_TESTS $f" ;; esac
done
TESTS=${TESTS:-$DEFAULT_TESTS}
# run_shards FILE: FILE's test ids dealt round-robin to PYTEST_SHARDS pytest processes run at once;
# prints their logs one after another and a summary line; fails when one of them fails.
run_shards() {
  local ids n=$PYTEST_SHARDS i rc=0 pids=()
  ids=$(mktemp -d)
  # shellcheck disable=SC2086
  "$PY" -m pytest "$1" -q --co -p no:cacheprovider ${PYTEST_ARGS:-} 2>/dev/null | grep "::" >"$ids/all"
  awk -v n="$n" -v d="$ids" '{ print > (d "/shard" (NR % n)) }' "$ids/all"
  for ((i = 0; i < n; i++)); do
    [ -s "$ids/shard$i" ] || continue
    # shellcheck disable=SC2086
    xargs -d '\n' -a "$ids/shard$i" "$PY" -m pytest -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} \
      >"$ids/log$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  cat "$ids"/log*
  echo "$(cat "$ids"/log* | grep -oE "[0-9]+ passed" | awk '{s += $1} END {print s + 0}') passed," \
    "$(cat "$ids"/log* | grep -oE "[0-9]+ failed" | awk '{s += $1} END {print s + 0}') failed in $n shards"
  rm -rf "$ids"
  return $rc
}

status=0
t0=$(date +%s)
# One pytest process per file: a CUDA error in one file (sticky for its process) stays in that file.
: >"$OUT/pytest.log"
for f in $TESTS; do
  if [ "${PYTEST_SHARDS:-1}" -gt 1 ]; then
    run_shards "$f" >"$OUT/pytest_one.log" 2>&1
  else
    # shellcheck disable=SC2086
    "$PY" -m pytest "$f" -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} >"$OUT/pytest_one.log" 2>&1
  fi
  rc=$?
  cat "$OUT/pytest_one.log" >>"$OUT/pytest.log"
  echo "== $f (exit $rc): $(grep -E '(passed|failed|error|skipped)' "$OUT/pytest_one.log" | tail -1)"
  grep -E "^(FAILED|ERROR) " "$OUT/pytest_one.log" | head -20
  # 5: no tests collected
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then status=1; fi
done
rm -f "$OUT/pytest_one.log"
echo "gpu_check: tests exit $status in $(( $(date +%s) - t0 )) s"

if [ "${BENCH:-1}" != "0" ]; then
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$PY" benchmarks/fusion_gpu.py --out "$OUT/fusion_gpu.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -60
  bstatus=${PIPESTATUS[0]}
  cp -f "$OUT/fusion_gpu.json" benchmarks/results/fusion_gpu.json 2>/dev/null || true
  echo "gpu_check: benchmark exit $bstatus in $(( $(date +%s) - t0 )) s"
  [ "$bstatus" = 0 ] || status=1
fi
exit "$status"

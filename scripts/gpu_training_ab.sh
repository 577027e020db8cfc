#!/usr/bin/env bash
# The GPU training steps of two builds, alternated in one run: an older tree in build/old against
# this one, each built in place. Prepare the older tree first (on a machine with the repository):
#   rm -rf build/old && mkdir -p build/old && git archive <rev> | tar -x -C build/old
# then run this at the repository root on the GPU machine (build/old travels with the tree).
#   CONFIGS="llama-small gpt2"  the benchmarks/training_gpu.py configs (default: both)
#   ROUNDS=2                    rounds of old, new
# Logs and results go under $OUT (default: build/gpu_ab).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-build/gpu_ab}
mkdir -p "$OUT"
PY=$(command -v python3)
[ -d build/old ] || { echo "gpu_training_ab: no build/old (see the header)"; exit 1; }
for d in build/old .; do
  tag=$([ "$d" = . ] && echo new || echo old)
  if ! (cd "$d" && CC=cc CXX=c++ PYTHON="$PY" THUNDER_BUILD_TESTS=OFF tools/build_inplace.sh >"$OUT/build_$tag.log" 2>&1); then
    tail -20 "$OUT/build_$tag.log"
    echo "gpu_training_ab: build of $d failed"
    exit 1
  fi
done
for ((round = 1; round <= ${ROUNDS:-2}; ++round)); do
  for d in build/old .; do
    tag=$([ "$d" = . ] && echo new || echo old)
    for cfg in ${CONFIGS:-llama-small gpt2}; do
      log="$OUT/${cfg}_${tag}_$round"
      (cd "$d" && PYTHONPATH=$PWD timeout 100 "$PY" benchmarks/training_gpu.py --config "$cfg" \
        --variants eager,thunder --no-compile --repeats 5 --profile --out "$log.json" >"$log.txt" 2>&1)
      echo "$cfg $tag $round: $(grep -E '^thunder ' "$log.txt") | $(grep -E '^eager ' "$log.txt")" \
        "| $(grep -E 'thunder: .* ms of kernels' "$log.txt")"
    done
  done
done

#!/usr/bin/env bash
# One GPU-machine command for the CUDA-graph work: build, the CUDA-graph and autograd tests, then the
# GPT-2 training benchmark with its check (thunder with cuda_graphs=True beside eager, thunder and
# torch.compile). Results under $OUT (default build/gpu_graphs).
#   TRAIN_ARGS="--no-compile"   extra arguments of benchmarks/training_gpu.py
#   TRAIN_VARIANTS="thunder,thunder cuda_graphs"   its --variants (names with spaces)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_graphs}
mkdir -p "$OUT"
OUT="$OUT/check" TESTS=${TESTS:-"tests/test_cudagraphs.py tests/test_grad_sdpa.py tests/test_fusion_dropout.py tests/test_training.py tests/test_grad_autograd.py"} BENCH=0 bash scripts/gpu_check.sh 2>&1 | tail -12
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2086
python3 -X faulthandler benchmarks/training_gpu.py --check ${TRAIN_ARGS:-} ${TRAIN_VARIANTS:+--variants "$TRAIN_VARIANTS"} --out "$OUT/training_gpu.json" 2>&1 | tee "$OUT/training.log" | tail -60

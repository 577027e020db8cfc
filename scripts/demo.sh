#!/usr/bin/env bash
# Jits a small GPT on the CPU, prints its trace, and reports eager vs thunder time and compile time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python examples/demo_gpt.py "$@"

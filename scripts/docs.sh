#!/usr/bin/env bash
# Builds the documentation (Sphinx) into docs/build; open docs/build/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import sphinx" 2>/dev/null || "$PY" -m pip install -q sphinx
PYTHONPATH=. "$PY" -m sphinx -q -b html docs/source docs/build
echo "docs built: docs/build/index.html"

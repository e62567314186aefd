"""The model card (``README.md`` in every artifact): what the adapter is for, how it was made,
how it scored and where it stops."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .artifact import Manifest


def model_card(m: Manifest) -> str:
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(m.metrics.items()) if v is not None) or "| (none) | |"
    serve = "yes" if m.servable else f"no — {m.not_servable_reason}"
    return f"""# {m.name} (version {m.version})

**Task:** `{m.task.name}` ({m.task.kind.value}) — {m.task.description or "user-defined task"}
**Labels:** {", ".join(f"`{label}`" for label in m.task.labels)}
**Method:** {m.method.value} · **trainable parameters:** {m.trainable_params} of {m.total_params}
**Base:** `{m.base.name}` (`{m.base.fingerprint[:19]}…`) · **max length:** {m.max_length} tokens
**Servable on the shared base:** {serve}
**Created:** {m.created_at.isoformat()} by {m.created_by}

## Intended use
Decision support inside the hospital, reviewed by clinicians. Not a diagnosis; not for use
on populations or note types unlike its training data.

## Data
Training data hash: `{m.data_hash or "unknown"}`. Settings: `{json.dumps(m.training, sort_keys=True)}`

## Metrics (held-out test split)
| metric | value |
|---|---|
{metrics}

## Limits
Scores come from one data set; check calibration and subgroup performance on local data before use.
"""

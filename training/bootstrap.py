"""95 % bootstrap confidence intervals of test metrics: examples resampled with replacement
(1,000 times by default, seeded), each metric's 2.5th and 97.5th percentiles. A resample in
which a metric is undefined (AUROC with one class) is left out of that metric's interval."""

from __future__ import annotations

import numpy as np

from bedside.adapters.kinds import strategy
from bedside.adapters.tasks import TaskSpec


def intervals(
    task: TaskSpec, gold: list, pred: list, scores: np.ndarray | None = None, n: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    if n <= 0 or not gold:
        return {}
    metrics_of = strategy(task.kind).resampling(task, gold, pred, scores)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        for key, value in metrics_of(rng.integers(0, len(gold), len(gold))).items():
            samples.setdefault(key, []).append(value)
    return {
        key: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        for key, values in sorted(samples.items())
        if len(values) >= n // 2
    }

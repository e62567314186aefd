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


def paired_differences(
    task: TaskSpec,
    gold: list,
    pred_a: list,
    pred_b: list,
    scores_a: np.ndarray | None = None,
    scores_b: np.ndarray | None = None,
    n: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """B − A for every metric of two versions scored on the same examples: the difference on the
    whole set and its 95 % paired bootstrap interval (both versions scored on each same resample)."""
    if not gold:
        return {}
    kind = strategy(task.kind)
    metrics_a = kind.resampling(task, gold, pred_a, scores_a)
    metrics_b = kind.resampling(task, gold, pred_b, scores_b)
    everything = np.arange(len(gold))
    full_a, full_b = metrics_a(everything), metrics_b(everything)
    point = {k: full_b[k] - full_a[k] for k in full_a if k in full_b}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        index = rng.integers(0, len(gold), len(gold))
        a, b = metrics_a(index), metrics_b(index)
        for key in point:
            if key in a and key in b and np.isfinite(a[key]) and np.isfinite(b[key]):
                samples.setdefault(key, []).append(b[key] - a[key])
    out = {}
    for key, value in sorted(point.items()):
        values = samples.get(key, [])
        low, high = (
            (np.percentile(values, 2.5), np.percentile(values, 97.5)) if len(values) >= n // 2 else (np.nan,) * 2
        )
        out[key] = (float(value), float(low), float(high))
    return out

"""The metrics of :mod:`.metrics` again, from counts: what a bootstrap computes a thousand times.

Each function is checked against its reference in ``metrics`` (sklearn, seqeval) by the tests;
here the counts are taken once per example and a resample only sums or ranks them, at a
thousandth of the reference's cost.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from seqeval.scheme import IOB2

from .tasks import TaskSpec


def entity_counts(gold, pred) -> np.ndarray:
    """Per sentence: [tp, predicted, gold] per entity type (sorted; strict IOB2 as seqeval), then
    [correct tokens, tokens]. A structured array's ``.dtype.names`` are the types."""
    from seqeval.scheme import Entities

    g = Entities([list(s) for s in gold], IOB2, suffix=False)
    p = Entities([list(s) for s in pred], IOB2, suffix=False)
    types = sorted(g.unique_tags | p.unique_tags)
    rows = []
    for i, (gs, ps) in enumerate(zip(gold, pred)):
        gold_set = {e.to_tuple() for e in g.entities[i]}
        pred_set = {e.to_tuple() for e in p.entities[i]}
        row = []
        for t in types:
            gt = {e for e in gold_set if e[1] == t}
            pt = {e for e in pred_set if e[1] == t}
            row += [len(gt & pt), len(pt), len(gt)]
        row += [sum(a == b for a, b in zip(gs, ps)), len(gs)]
        rows.append(tuple(row))
    fields = [(f"{t}:{k}", "i8") for t in types for k in ("tp", "pred", "gold")] + [("tok:ok", "i8"), ("tok:n", "i8")]
    return np.array(rows, dtype=fields)


def metrics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """:func:`token_metrics`' entity and token figures from summed :func:`entity_counts`."""

    def f1(tp: float, npred: float, ngold: float) -> tuple[float, float, float]:
        p = tp / npred if npred else 0.0
        r = tp / ngold if ngold else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    names = counts.dtype.names or ()
    total = {name: int(counts[name].sum()) for name in names}
    types = sorted({name.split(":")[0] for name in names if not name.startswith("tok:")})
    tp, npred, ngold = (sum(total[f"{t}:{k}"] for t in types) for k in ("tp", "pred", "gold"))
    precision, recall, f = f1(tp, npred, ngold)
    per_type = {
        t: f1(total[f"{t}:tp"], total[f"{t}:pred"], total[f"{t}:gold"])[2]
        for t in types
        if total[f"{t}:pred"] or total[f"{t}:gold"]
    }
    metrics = {
        "entity_precision": precision,
        "entity_recall": recall,
        "entity_f1": f,
        "token_accuracy": total["tok:ok"] / total["tok:n"] if total["tok:n"] else 0.0,
        "entity_f1_macro": float(np.mean(list(per_type.values()))) if per_type else 0.0,
    }
    metrics.update({f"entity_f1_{t}": v for t, v in sorted(per_type.items())})
    return metrics


def _f1(tp, predicted, support) -> np.ndarray:
    """Per label: 2 tp / (gold + predicted), 0 where both are 0 (sklearn's zero_division=0)."""
    denominator = support + predicted
    return np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)


def _confusion(g: np.ndarray, p: np.ndarray, n_labels: int):
    cm = np.bincount(g * n_labels + p, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    return np.diag(cm).astype(float), cm.sum(0).astype(float), cm.sum(1).astype(float)


def _auroc(task: TaskSpec, g: np.ndarray, scores: np.ndarray) -> float | None:
    """:func:`.metrics.auroc` by ranks (Mann-Whitney; ties count half, as the ROC's trapezoids)."""
    classes = [1] if task.num_labels == 2 else range(task.num_labels)
    values = []
    for c in classes:
        positive = g == c
        n_pos = int(positive.sum())
        if 0 < n_pos < len(g):
            ranks = rankdata(scores[:, c])
            values.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(g) - n_pos)))
    return float(np.mean(values)) if values else None


def sequence_figures(task: TaskSpec, g: np.ndarray, p: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    """:func:`.metrics.sequence_metrics` of label ids ``g`` and ``p`` (and [n, L] ``scores``)."""
    tp, predicted, support = _confusion(g, p, task.num_labels)
    present = (support + predicted) > 0
    f1 = _f1(tp, predicted, support)
    metrics: dict[str, float] = {}
    if scores is not None and (value := _auroc(task, g, scores)) is not None:
        metrics["auroc"] = value
    accuracy = float(tp.sum() / len(g))
    metrics["accuracy"] = accuracy
    metrics["f1_macro"] = float(f1[present].mean())
    metrics["f1_micro"] = accuracy  # one label per example: micro F1 is accuracy
    metrics["f1_weighted"] = float((f1 * support).sum() / support.sum())
    return metrics


def pair_figures(task: TaskSpec, g: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """:func:`.metrics.pair_metrics` of label ids ``g`` and ``p``."""
    tp, predicted, support = _confusion(g, p, task.num_labels)
    present = (support + predicted) > 0
    relation = present.copy()
    if task.negative_label:
        relation[task.label_id(task.negative_label)] = False
    f1 = _f1(tp, predicted, support)
    metrics: dict[str, float] = {}
    if relation.any():
        t, pr, su = tp[relation].sum(), predicted[relation].sum(), support[relation].sum()
        precision, recall = (t / pr if pr else 0.0), (t / su if su else 0.0)
        metrics["relation_precision"] = float(precision)
        metrics["relation_recall"] = float(recall)
        metrics["relation_f1"] = float(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        metrics["relation_f1_macro"] = float(f1[relation].mean())
    else:
        metrics.update(relation_precision=0.0, relation_recall=0.0, relation_f1=0.0, relation_f1_macro=0.0)
    accuracy = float(tp.sum() / len(g))
    metrics["f1_micro"] = accuracy
    metrics["f1_macro"] = float(f1[present].mean())
    metrics["accuracy"] = accuracy
    return metrics

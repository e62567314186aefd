"""Evaluation metrics, computed the way the paper reports them.

* sequence: AUROC from class probabilities (binary: positive class = label 1;
  more classes: macro one-vs-rest), accuracy, F1 macro/micro/weighted.
* token: strict entity-level precision/recall/F1 (seqeval, IOB2, micro) and
  F1 per entity type.
* pair: relation F1 micro and macro **excluding** the negative (no-relation)
  label, F1 micro including it, accuracy.

AUROC needs both classes in the gold labels; when it is undefined (or no
scores are given) the ``auroc`` key is left out rather than set to NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from seqeval.metrics import accuracy_score as seq_accuracy
from seqeval.metrics import classification_report
from seqeval.metrics import f1_score as seq_f1
from seqeval.metrics import precision_score as seq_precision
from seqeval.metrics import recall_score as seq_recall
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from .kinds import strategy
from .tasks import TaskSpec


def primary_metric(task: TaskSpec) -> str:
    """The metric that picks the best epoch: ``auroc`` (sequence),
    ``entity_f1`` (token) or ``relation_f1`` (pair)."""
    return strategy(task.kind).primary_metric


def compute_metrics(task: TaskSpec, gold, pred, scores=None) -> dict[str, float]:
    """Metrics for one evaluation pass.

    ``gold``/``pred``: labels (strings or label indices) for sequence and pair
    tasks; lists of BIO tag sequences for token tasks. ``scores``: sequence
    tasks only, probabilities ``[n, num_labels]`` (for binary tasks a 1-D
    array of label-1 probabilities also works).

    Keys — sequence: ``auroc`` (when defined), ``accuracy``, ``f1_macro``,
    ``f1_micro``, ``f1_weighted``. Token: ``entity_precision``,
    ``entity_recall``, ``entity_f1``, ``entity_f1_macro``, ``token_accuracy``,
    ``entity_f1_<type>`` per type seen in gold or predictions. Pair:
    ``relation_precision``, ``relation_recall``, ``relation_f1`` (micro, no
    negative label), ``relation_f1_macro`` (macro over the non-negative labels
    seen in gold or predictions), ``f1_micro`` and ``f1_macro`` (all labels),
    ``accuracy``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions")
    if len(gold) == 0:
        raise ValueError("no examples to score")
    return strategy(task.kind).metrics(task, gold, pred, scores)


def label_ids(task: TaskSpec, values: Sequence) -> np.ndarray:
    ids = []
    for value in values:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= value < task.num_labels:
                raise ValueError(f"label index {value} out of range for task {task.name!r}")
            ids.append(int(value))
        else:
            ids.append(task.label_id(value))
    return np.asarray(ids, dtype=int)


def auroc(task: TaskSpec, gold_ids: np.ndarray, scores) -> float | None:
    """Binary: AUROC of label 1's probability. Multi-class: macro one-vs-rest
    over the classes that have both positives and negatives in gold. None when
    undefined (a single class in gold)."""
    scores = np.asarray(scores, dtype=float)
    n = len(gold_ids)
    if scores.ndim == 1 and task.num_labels == 2:
        scores = np.stack([1.0 - scores, scores], axis=1)
    if scores.shape != (n, task.num_labels):
        raise ValueError(f"scores should have shape ({n}, {task.num_labels}), got {scores.shape}")
    classes = [1] if task.num_labels == 2 else range(task.num_labels)
    values = []
    for c in classes:
        positive = gold_ids == c
        if 0 < positive.sum() < n:
            values.append(roc_auc_score(positive, scores[:, c]))
    return float(np.mean(values)) if values else None


def sequence_metrics(task: TaskSpec, gold, pred, scores=None) -> dict[str, float]:
    g, p = label_ids(task, gold), label_ids(task, pred)
    metrics: dict[str, float] = {}
    if scores is not None:
        value = auroc(task, g, scores)
        if value is not None:
            metrics["auroc"] = value
    metrics["accuracy"] = float(accuracy_score(g, p))
    for average in ("macro", "micro", "weighted"):
        metrics[f"f1_{average}"] = float(f1_score(g, p, average=average, zero_division=0))
    return metrics


def token_metrics(task: TaskSpec, gold, pred) -> dict[str, float]:
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    metrics = {
        "entity_precision": float(seq_precision(gold, pred, **strict)),
        "entity_recall": float(seq_recall(gold, pred, **strict)),
        "entity_f1": float(seq_f1(gold, pred, **strict)),
        "token_accuracy": float(seq_accuracy(gold, pred)),
    }
    with warnings.catch_warnings():  # seqeval averages an empty slice when no entity is valid
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, pred, output_dict=True, **strict)
    per_type = {name: float(row["f1-score"]) for name, row in report.items() if not name.endswith(" avg")}
    # Macro over the types seen in gold or predictions (seqeval's macro, without its
    # NaN when there are none).
    metrics["entity_f1_macro"] = float(np.mean(list(per_type.values()))) if per_type else 0.0
    metrics.update({f"entity_f1_{name}": value for name, value in sorted(per_type.items())})
    return metrics


def pair_metrics(task: TaskSpec, gold, pred) -> dict[str, float]:
    g, p = label_ids(task, gold), label_ids(task, pred)
    negative = task.label_to_id.get(task.negative_label) if task.negative_label else None
    seen = set(g.tolist()) | set(p.tolist())
    relations = [i for i in range(task.num_labels) if i != negative and i in seen]
    metrics: dict[str, float] = {}
    if relations:
        for key, fn in (
            ("relation_precision", precision_score),
            ("relation_recall", recall_score),
            ("relation_f1", f1_score),
        ):
            metrics[key] = float(fn(g, p, labels=relations, average="micro", zero_division=0))
        metrics["relation_f1_macro"] = float(f1_score(g, p, labels=relations, average="macro", zero_division=0))
    else:  # only the negative label anywhere: no relation to find or to get right
        metrics.update(relation_precision=0.0, relation_recall=0.0, relation_f1=0.0, relation_f1_macro=0.0)
    metrics["f1_micro"] = float(f1_score(g, p, average="micro", zero_division=0))
    metrics["f1_macro"] = float(f1_score(g, p, average="macro", zero_division=0))
    metrics["accuracy"] = float(accuracy_score(g, p))
    return metrics

"""Calibration and operating points, fitted on the validation split after training.

Temperature scaling (one scalar for the adapter: the labels' order never changes, so AUROC and the
argmax label stay as they are) minimises the validation negative log-likelihood; vector scaling
(a weight and a bias per label) is used instead only where it is measured better on examples
it was not fitted on (cross-validated within the validation split); a fit that would not lower
the NLL is not used. For a binary task an operating point is then chosen on the
calibrated validation probabilities by a stated rule. Reported: NLL, Brier score and expected
calibration error (15 equal-width bins of the top label's probability) before and after, and a
reliability diagram.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from bedside.adapters.metrics import label_ids
from bedside.adapters.readout import OperatingPoint, Readout
from bedside.adapters.tasks import TaskSpec

BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return Readout(temperature=temperature).probabilities(logits)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance to the one-hot label, summed over labels (0 best, 2 worst)."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(1).mean())


def _bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per bin of the top label's probability: mean confidence, accuracy and count."""
    confidence, predicted = probs.max(1), probs.argmax(1)
    correct = predicted == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    where = _bins(confidence, bins)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "confidence": float(confidence[where == b].mean()) if (where == b).any() else None,
            "accuracy": float(correct[where == b].mean()) if (where == b).any() else None,
            "count": int((where == b).sum()),
        }
        for b in range(bins)
    ]


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    # sum over bins of count/n * |accuracy - confidence| = sum |correct - confident| per bin / n
    where = _bins(confidence, bins)
    gap = np.bincount(where, correct.astype(float), bins) - np.bincount(where, confidence, bins)
    return float(np.abs(gap).sum() / len(confidence))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted |accuracy - confidence| over the bins."""
    return _ece(probs.max(1), probs.argmax(1) == labels, bins)


def scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"nll": nll(probs, labels), "brier": brier(probs, labels), "ece": ece(probs, labels)}


def score_intervals(probs: np.ndarray, labels: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict:
    """95 % bootstrap intervals of NLL and Brier: the examples resampled with replacement. ECE
    gets none: a resample repeats examples, which adds noise that binned ECE reads as
    miscalibration (a calibrated split's ECE often falls below its own percentile interval);
    :func:`ece_floor` is its yardstick instead."""
    rng = np.random.default_rng(seed)
    drawn = [rng.integers(0, len(labels), len(labels)) for _ in range(resamples)]
    values = {name: [fn(probs[i], labels[i]) for i in drawn] for name, fn in (("nll", nll), ("brier", brier))}
    return {k: [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] for k, v in values.items()}


def ece_floor(probs: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """The ECE a perfectly calibrated model shows at this size, from sampling alone: each label
    drawn from ``probs`` itself (the top label right with its own probability), ECE measured;
    mean and 95th percentile over the draws. Below the floor, a measured ECE cannot be told from
    perfect calibration on this many examples."""
    rng = np.random.default_rng(seed)
    confidence = probs.max(1)
    draws = [_ece(confidence, rng.random(len(confidence)) < confidence) for _ in range(resamples)]
    return {"mean": float(np.mean(draws)), "p95": float(np.quantile(draws, 0.95))}


# The search range. On a validation split the adapter gets (nearly) all right, NLL keeps falling
# as T shrinks: an unbounded fit sharpens every answer to 0 or 1 (seen on the demo's relations,
# T -> 0.05). A quarter is as far as sharpening goes; ten as far as flattening.
T_MIN, T_MAX = 0.25, 10.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL within [T_MIN, T_MAX]; 1.0 unless it lowers it."""
    logits = np.asarray(logits, dtype=np.float64)

    def loss(log_t: float) -> float:
        return nll(softmax(logits, float(np.exp(log_t))), labels)

    bounds = (float(np.log(T_MIN)), float(np.log(T_MAX)))
    found = minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-4})
    temperature = float(np.exp(found.x))
    return temperature if loss(float(found.x)) < loss(0.0) else 1.0


def rates(positive: np.ndarray, gold: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, PPV and F1 of ``p(positive) ≥ threshold`` against ``gold`` (bool)."""
    called = positive >= threshold
    tp, fp = float((called & gold).sum()), float((called & ~gold).sum())
    fn, tn = float((~called & gold).sum()), float((~called & ~gold).sum())
    sensitivity = tp / (tp + fn) if tp + fn else 0.0
    ppv = tp / (tp + fp) if tp + fp else 0.0
    return {
        "sensitivity": sensitivity,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "ppv": ppv,
        "f1": 2 * sensitivity * ppv / (sensitivity + ppv) if sensitivity + ppv else 0.0,
    }


def choose_threshold(positive: np.ndarray, gold: np.ndarray, rule: str) -> tuple[float, dict[str, float]]:
    """The threshold ``rule`` picks among the distinct validation probabilities:
    f1 (highest F1), youden (highest sensitivity + specificity - 1), sensitivity:X (the highest
    threshold with sensitivity ≥ X: the most specific), ppv:X (the lowest with PPV ≥ X: the most
    sensitive; if none reaches X, the one with the highest PPV)."""
    candidates = np.unique(np.concatenate([positive, [0.0, 1.0]]))
    table = [(t, rates(positive, gold, t)) for t in candidates]
    name, _, value = rule.partition(":")
    if name == "f1":
        best = max(table, key=lambda row: (row[1]["f1"], -row[0]))
    elif name == "youden":
        best = max(table, key=lambda row: (row[1]["sensitivity"] + row[1]["specificity"], -row[0]))
    elif name == "sensitivity":
        reaching = [row for row in table if row[1]["sensitivity"] >= float(value)]
        best = max(reaching, key=lambda row: row[0])  # threshold 0 always reaches it
    elif name == "ppv":
        reaching = [row for row in table if row[1]["ppv"] >= float(value)]
        best = min(reaching, key=lambda row: row[0]) if reaching else max(table, key=lambda row: row[1]["ppv"])
    else:
        raise ValueError(f"unknown threshold rule {rule!r}")
    return float(best[0]), best[1]


def positive_label(task: TaskSpec) -> str:
    """The label an operating point is for: the negative label's partner if the task names one,
    else the second label (``died``, ``1``)."""
    if task.negative_label in task.labels:
        return next(label for label in task.labels if label != task.negative_label)
    return task.labels[1]


VECTOR_L2 = 1e-2  # pull of the per-label weights and biases towards the temperature's fit
FOLDS = 5


def fit_vector(logits: np.ndarray, labels: np.ndarray) -> Readout:
    """Vector scaling: per-label weights (kept > 0: a label's logit never counts against it) and
    biases minimising validation NLL, started from and pulled towards the temperature's fit."""
    logits = np.asarray(logits, dtype=np.float64)
    n, k = logits.shape
    onehot = np.eye(k)[labels]
    w0 = np.concatenate([np.full(k, 1.0 / fit_temperature(logits, labels)), np.zeros(k)])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k:]
        z = logits * w + b
        z -= z.max(1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
        g = (np.exp(log_p) - onehot) / n  # d NLL / d z
        pull = theta - w0
        value = float(-(log_p * onehot).sum() / n + VECTOR_L2 * (pull**2).sum())
        grad = np.concatenate([(g * logits).sum(0), g.sum(0)]) + 2 * VECTOR_L2 * pull
        return value, grad

    bounds = [(1e-3, 1.0 / T_MIN)] * k + [(None, None)] * k
    found = minimize(loss, w0, jac=True, method="L-BFGS-B", bounds=bounds)
    return Readout(weights=tuple(float(v) for v in found.x[:k]), biases=tuple(float(v) for v in found.x[k:]))


def fit_temperature_readout(logits: np.ndarray, labels: np.ndarray) -> Readout:
    return Readout(temperature=fit_temperature(logits, labels))


FITS = {"temperature": fit_temperature_readout, "vector": fit_vector}


def cross_validated_nll(fit, logits: np.ndarray, labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> float:
    """NLL of ``fit`` on each of ``folds`` held-out parts of the validation split, fitted on the
    rest: more parameters always fit the whole split better, not always the examples they did not see."""
    order = np.random.default_rng(seed).permutation(len(labels))
    losses = []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        losses.append(nll(fit(logits[rest], labels[rest]).probabilities(logits[part]), labels[part]) * len(part))
    return float(sum(losses) / len(labels))


def choose_calibration(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[Readout, dict]:
    """``temperature``, ``vector``, ``none``, or ``auto``: vector scaling only where its held-out
    NLL (5-fold, on validation) is lower than the temperature's. The chosen method is then fitted
    on the whole validation split; a fit that does not lower its NLL is not used."""
    logits = np.asarray(logits, dtype=np.float64)
    if method == "none":
        return Readout(), {"method": "none"}
    held_out = {}
    if method == "auto":
        if len(labels) >= 2 * FOLDS:
            held_out = {name: cross_validated_nll(fit, logits, labels) for name, fit in FITS.items()}
        method = "vector" if held_out and held_out["vector"] < held_out["temperature"] else "temperature"
    readout = FITS[method](logits, labels)
    if nll(readout.probabilities(logits), labels) >= nll(softmax(logits), labels):
        readout, method = Readout(), "none"
    report: dict = {"method": method, "temperature": readout.temperature}
    if readout.weights is not None:
        report.update(weights=list(readout.weights), biases=list(readout.biases or ()))
    if held_out:
        report["held_out_nll"] = held_out
    return readout, report


def fit_readout(
    task: TaskSpec, logits: np.ndarray, labels: np.ndarray, rule: str, calibration: str = "auto"
) -> tuple[Readout, dict]:
    """The readout fitted on validation ``logits`` [n, L] and label ids, and what it measured.
    ``calibration``: auto, temperature, vector or none (:func:`choose_calibration`)."""
    scaled, report = choose_calibration(logits, labels, calibration)
    before, after = softmax(logits), scaled.probabilities(logits)
    report["validation"] = {"before": scores(before, labels), "after": scores(after, labels), "n": int(len(labels))}
    point = None
    if task.num_labels == 2 and rule != "argmax":
        positive = positive_label(task)
        pos = task.label_id(positive)
        threshold, at = choose_threshold(after[:, pos], labels == pos, rule)
        point = OperatingPoint(rule=rule, positive=positive, threshold=threshold, validation=at)
    return scaled.model_copy(update={"operating_point": point}), report


def reliability_plot(
    probs_before: np.ndarray, probs_after: np.ndarray, labels: np.ndarray, path: Path, title: str
) -> None:
    """Accuracy against confidence per bin, before and after calibration, with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for name, probs in (("before", probs_before), ("after (calibrated)", probs_after)):
        bins = [b for b in reliability(probs, labels) if b["count"]]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            "o-",
            label=f"{name}: ECE {ece(probs, labels):.3f}, Brier {brier(probs, labels):.3f}",
        )
        counts.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["count"] for b in bins], width=1 / BINS, alpha=0.5)
    ax.set_ylabel("accuracy of the top label")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    counts.set_xlabel("probability of the top label")
    counts.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fit_on_validation(task: TaskSpec, val, rule: str, calibration: str) -> tuple[Readout, dict]:
    """The readout fitted on a validation :class:`~.evaluation.EvalResult` (its logits per example)."""
    logits = np.stack([lg.float().numpy() for lg in val.logits])
    return fit_readout(task, logits, label_ids(task, val.gold), rule, calibration)


def report_on_test(
    task: TaskSpec, test, readout: Readout, report: dict, plot_to: Path | None, resamples: int = 1000, seed: int = 0
) -> dict:
    """``report`` with the held-out test split's scores before and after (after: with 95 %
    bootstrap intervals and the ECE floor of its size), and the reliability diagram."""
    logits = np.stack([lg.float().numpy() for lg in test.logits])
    labels = label_ids(task, test.gold)
    before, after = softmax(logits), readout.probabilities(logits)
    report = {
        **report,
        "test": {"before": scores(before, labels), "after": scores(after, labels), "n": int(len(labels))},
    }
    if resamples:
        report["test"]["after_intervals"] = score_intervals(after, labels, resamples, seed)
        report["test"]["ece_floor"] = ece_floor(after, resamples, seed)
    report["reliability_test"] = reliability(after, labels)
    if plot_to is not None:
        reliability_plot(before, after, labels, plot_to, f"{task.name}: test split, {describe(readout)}")
        report["diagram"] = plot_to.name
    return report


def describe(readout: Readout) -> str:
    """The calibration in a few words, for titles and tables."""
    if readout.weights is not None:
        weights = ", ".join(f"{w:.2f}" for w in readout.weights)
        return f"vector scaling (weights {weights})"
    return f"T = {readout.temperature:.3f}"

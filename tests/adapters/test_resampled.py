"""The count-based metrics the bootstrap uses equal the reference metrics (sklearn, seqeval)."""

from __future__ import annotations

import numpy as np
import pytest

from bedside.adapters.kinds import strategy
from bedside.adapters.metrics import pair_metrics, sequence_metrics, token_metrics
from bedside.adapters.resampled import entity_counts, metrics_from_counts
from bedside.adapters.tasks import PRESETS, TaskKind, TaskSpec

FIVE = TaskSpec(name="five", kind=TaskKind.sequence, labels=("a", "b", "c", "d", "e"))
PAIR = TaskSpec(name="rel", kind=TaskKind.pair, labels=("none", "treats", "causes"), negative_label="none")


def _labels(rng, task, n, missing=()):
    allowed = [i for i in range(task.num_labels) if i not in missing]
    return rng.choice(allowed, n)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("task", [PRESETS["mortality"], FIVE])
def test_sequence_figures_equal_sklearn(seed, task):
    rng = np.random.default_rng(seed)
    n = 20 + 10 * seed
    g = _labels(rng, task, n, missing=(seed % task.num_labels,) if seed % 2 else ())
    p = _labels(rng, task, n)
    scores = rng.dirichlet(np.ones(task.num_labels), n).round(2)  # rounded: ties in the ranks
    gold, pred = [task.labels[i] for i in g], [task.labels[i] for i in p]
    reference = sequence_metrics(task, gold, pred, scores)
    fast = strategy(task.kind).resampling(task, gold, pred, scores)(np.arange(n))
    assert fast == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_pair_figures_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 15 + 5 * seed
    g, p = _labels(rng, PAIR, n), _labels(rng, PAIR, n, missing=(1, 2) if seed == 3 else ())
    if seed == 5:
        g, p = np.zeros(n, int), np.zeros(n, int)  # only the negative label
    gold, pred = [PAIR.labels[i] for i in g], [PAIR.labels[i] for i in p]
    fast = strategy(PAIR.kind).resampling(PAIR, gold, pred)(np.arange(n))
    assert fast == pytest.approx(pair_metrics(PAIR, gold, pred), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_entity_counts_equal_seqeval(seed):
    rng = np.random.default_rng(seed)
    tags = ["O", "B-drug", "I-drug", "B-problem", "I-problem"]
    gold = [list(rng.choice(tags, rng.integers(1, 12))) for _ in range(30)]
    pred = [[t if rng.random() < 0.7 else str(rng.choice(tags)) for t in sentence] for sentence in gold]
    reference = token_metrics(PRESETS["ner"], gold, pred)
    fast = metrics_from_counts(entity_counts(gold, pred))
    assert fast == pytest.approx({k: reference[k] for k in fast}, abs=1e-12)
    # A resample with repeats equals the reference on the repeated sentences.
    index = rng.integers(0, 30, 30)
    again = token_metrics(PRESETS["ner"], [gold[i] for i in index], [pred[i] for i in index])
    assert metrics_from_counts(entity_counts(gold, pred)[index]) == pytest.approx(
        {k: again[k] for k in fast if k in again}, abs=1e-12
    )

"""Metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bedside.adapters.metrics import compute_metrics, primary_metric
from bedside.adapters.tasks import PRESETS, TaskSpec

NER = PRESETS["ner"]
RELATIONS = PRESETS["relations"]
MORTALITY = PRESETS["mortality"]
LOS = PRESETS["length_of_stay"]


def test_primary_metric_per_kind():
    assert primary_metric(MORTALITY) == "auroc"
    assert primary_metric(LOS) == "auroc"
    assert primary_metric(NER) == "entity_f1"
    assert primary_metric(RELATIONS) == "relation_f1"


def test_binary_sequence_metrics():
    gold = ["survived", "survived", "died", "died"]
    pred = ["survived", "died", "died", "died"]
    p_died = [0.1, 0.4, 0.35, 0.8]
    scores = np.array([[1 - p, p] for p in p_died])
    m = compute_metrics(MORTALITY, gold, pred, scores)
    # died ranks above survived in 3 of 4 (died, survived) pairs
    assert m["auroc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)
    # survived: P=1 R=0.5 F1=2/3; died: P=2/3 R=1 F1=0.8
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["f1_micro"] == pytest.approx(0.75)
    assert m["f1_weighted"] == pytest.approx((2 / 3 + 0.8) / 2)
    # label indices and 1-D positive-class scores give the same numbers
    assert compute_metrics(MORTALITY, [0, 0, 1, 1], [0, 1, 1, 1], p_died) == m


def test_multiclass_auroc_is_macro_one_vs_rest():
    rng = np.random.default_rng(0)
    gold = np.array([0, 1, 2, 3] * 5)
    scores = rng.dirichlet(np.ones(4), size=len(gold))
    pred = scores.argmax(axis=1)
    m = compute_metrics(LOS, gold.tolist(), pred.tolist(), scores)
    expected = roc_auc_score(gold, scores, multi_class="ovr", average="macro")
    assert m["auroc"] == pytest.approx(expected)


def test_auroc_left_out_when_undefined():
    m = compute_metrics(MORTALITY, ["died", "died"], ["died", "survived"], [[0.2, 0.8], [0.6, 0.4]])
    assert "auroc" not in m and m["accuracy"] == 0.5
    assert "auroc" not in compute_metrics(MORTALITY, ["died"], ["died"])
    assert all(not math.isnan(v) for v in m.values())
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(LOS, [0, 1], [0, 1], [[0.5, 0.5], [0.5, 0.5]])


def test_entity_f1_is_strict_iob2():
    gold = [["B-problem", "I-problem", "O", "B-test"]]
    # An entity that starts with I- is no entity in strict IOB2 (conlleval would accept it).
    pred = [["I-problem", "I-problem", "O", "B-test"]]
    m = compute_metrics(NER, gold, pred)
    assert m["entity_precision"] == pytest.approx(1.0)
    assert m["entity_recall"] == pytest.approx(0.5)
    assert m["entity_f1"] == pytest.approx(2 / 3)
    assert m["entity_f1_problem"] == 0.0 and m["entity_f1_test"] == 1.0
    assert m["token_accuracy"] == pytest.approx(0.75)
    assert m["entity_f1_macro"] == pytest.approx(0.5)


def test_entity_f1_boundaries_and_types_must_match():
    gold = [["B-problem", "I-problem", "O"], ["B-treatment", "O", "B-test"]]
    pred = [["B-problem", "O", "O"], ["B-treatment", "O", "B-problem"]]
    m = compute_metrics(NER, gold, pred)
    # right: treatment; wrong: short problem, test typed as problem -> P = 1/3, R = 1/3
    assert m["entity_f1"] == pytest.approx(1 / 3)
    assert m["entity_f1_treatment"] == 1.0


def test_entity_metrics_without_entities_do_not_crash():
    m = compute_metrics(NER, [["O", "O"]], [["O", "I-test"]])
    assert m["entity_f1"] == 0.0 and m["entity_f1_macro"] == 0.0
    assert all(not math.isnan(v) for v in m.values())
    with pytest.raises(ValueError, match="tags"):
        compute_metrics(NER, [["O", "O"]], [["O"]])


def test_relation_f1_excludes_the_negative_label():
    gold = ["TrAP", "none", "PIP", "none", "TeRP"]
    pred = ["TrAP", "PIP", "none", "none", "TeRP"]
    m = compute_metrics(RELATIONS, gold, pred)
    # excluding none: TP = 2 (TrAP, TeRP); predicted 3, gold 3
    assert m["relation_precision"] == pytest.approx(2 / 3)
    assert m["relation_recall"] == pytest.approx(2 / 3)
    assert m["relation_f1"] == pytest.approx(2 / 3)
    # macro over TrAP (1), TeRP (1), PIP (0)
    assert m["relation_f1_macro"] == pytest.approx(2 / 3)
    # including none: 3 of 5 right
    assert m["f1_micro"] == pytest.approx(0.6)
    assert m["accuracy"] == pytest.approx(0.6)


def test_relation_metrics_with_only_negatives():
    m = compute_metrics(RELATIONS, ["none", "none"], ["none", "none"])
    assert m["relation_f1"] == 0.0 and m["accuracy"] == 1.0


def test_pair_task_without_negative_label_uses_all_labels():
    task = TaskSpec(name="gad", kind="pair", labels=("0", "1"))
    m = compute_metrics(task, ["0", "1", "1"], ["0", "1", "0"])
    assert m["relation_f1"] == pytest.approx(2 / 3)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 gold"):
        compute_metrics(MORTALITY, ["died", "died"], ["died"])

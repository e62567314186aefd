"""Temperature scaling, operating points and bootstrap intervals: the fitting functions on drawn
data, and the fitted readout through training, the artifact and serving (torch and ONNX)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bedside.adapters.artifact import build_model, load_artifact, save_from_model
from bedside.adapters.predict import Predictor
from bedside.adapters.readout import OperatingPoint, Readout
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import tiny_backbone
from bedside.training import trainer as trainer_module
from bedside.training.bootstrap import intervals
from bedside.training.calibration import (
    choose_threshold,
    ece,
    ece_floor,
    fit_readout,
    fit_temperature,
    nll,
    rates,
    reliability,
    score_intervals,
    softmax,
)
from bedside.training.loaders import load_dataset
from bedside.training.settings import TrainSettings
from bedside.training.synth import write_synthetic
from bedside.training.trainer import train
from tests.helpers import four_task_model, smoke_examples, task_manifest

MORTALITY = PRESETS["mortality"]


def drawn(n: int, seed: int, sharpness: float = 1.0, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax at temperature ``1 / sharpness`` is calibrated, and labels drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, classes))
    probs = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits * sharpness, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sharpness", [0.3, 1.0, 4.0])
def test_temperature_never_raises_validation_nll(seed, sharpness):
    logits, labels = drawn(300, seed, sharpness, classes=2 + seed % 3)
    temperature = fit_temperature(logits, labels)
    assert nll(softmax(logits, temperature), labels) <= nll(softmax(logits), labels)


def test_temperature_undoes_over_and_under_confidence():
    logits, labels = drawn(4000, 0, sharpness=3.0)  # three times too sharp
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.15)
    logits, labels = drawn(4000, 1, sharpness=0.5)  # too flat
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.15)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.9, 0.75])
def test_sensitivity_rule_reaches_its_sensitivity_on_validation(seed, target):
    rng = np.random.default_rng(seed)
    gold = rng.random(400) < 0.1  # about one positive in ten, as mortality
    positive = np.clip(rng.normal(0.3 + 0.3 * gold, 0.2), 0, 1)
    threshold, at = choose_threshold(positive, gold, f"sensitivity:{target}")
    assert at["sensitivity"] >= target and rates(positive, gold, threshold) == at
    # The most specific such threshold: any higher one misses the target.
    higher = positive[positive > threshold]
    if len(higher):
        assert rates(positive, gold, float(higher.min()))["sensitivity"] < target


def test_ppv_f1_and_youden_rules_pick_what_they_say():
    rng = np.random.default_rng(3)
    gold = rng.random(500) < 0.3
    positive = np.clip(rng.normal(0.35 + 0.3 * gold, 0.15), 0, 1)
    _, at = choose_threshold(positive, gold, "ppv:0.7")
    assert at["ppv"] >= 0.7
    grid = np.unique(positive)
    _, best_f1 = choose_threshold(positive, gold, "f1")
    assert best_f1["f1"] == pytest.approx(max(rates(positive, gold, t)["f1"] for t in grid))
    _, best_j = choose_threshold(positive, gold, "youden")
    j = max(rates(positive, gold, t)["sensitivity"] + rates(positive, gold, t)["specificity"] for t in grid)
    assert best_j["sensitivity"] + best_j["specificity"] == pytest.approx(j)
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(positive, gold, "accuracy")


def test_operating_point_labels_by_threshold():
    logits, labels = drawn(500, 4)
    readout, report = fit_readout(MORTALITY, logits, labels, "sensitivity:0.9")
    point = readout.operating_point
    assert point.positive == "died" and point.validation["sensitivity"] >= 0.9
    assert report["validation"]["after"]["nll"] <= report["validation"]["before"]["nll"]
    probs = readout.probabilities(logits)
    expected = ["died" if p >= point.threshold else "survived" for p in probs[:, 1]]
    assert readout.labels(MORTALITY, probs) == expected
    with pytest.raises(ValueError, match="binary task"):
        readout.check(PRESETS["length_of_stay"])


def _sequence_sample(n: int, seed: int):
    rng = np.random.default_rng(seed)
    gold = rng.random(n) < 0.4
    scores = np.clip(rng.normal(0.4 + 0.25 * gold, 0.2), 0.001, 0.999)
    probs = np.stack([1 - scores, scores], 1)
    labels = ["died" if g else "survived" for g in gold]
    pred = ["died" if s >= 0.5 else "survived" for s in scores]
    return labels, pred, probs


def _token_sample(n: int, seed: int):
    rng = np.random.default_rng(seed)
    gold, pred = [], []
    for _ in range(n):
        tags = ["O", "B-problem", "I-problem", "O", "B-drug", "O"]
        guess = list(tags)
        if rng.random() < 0.3:
            guess[1] = "O"
        if rng.random() < 0.2:
            guess[3] = "B-test"
        gold.append(tags)
        pred.append(guess)
    return gold, pred


def test_bootstrap_intervals_contain_the_point_and_shrink_with_more_data():
    from bedside.adapters.metrics import sequence_metrics, token_metrics

    widths = {}
    for n in (80, 800):
        gold, pred, probs = _sequence_sample(n, seed=n)
        point = sequence_metrics(MORTALITY, gold, pred, probs)
        ci = intervals(MORTALITY, gold, pred, probs, n=300, seed=0)
        for key in ("auroc", "accuracy", "f1_macro"):
            assert ci[key][0] <= point[key] <= ci[key][1], key
        tgold, tpred = _token_sample(n, seed=n)
        tpoint = token_metrics(PRESETS["ner"], tgold, tpred)
        tci = intervals(PRESETS["ner"], tgold, tpred, None, n=300, seed=0)
        assert tci["entity_f1"][0] <= tpoint["entity_f1"] <= tci["entity_f1"][1]
        widths[n] = (ci["auroc"][1] - ci["auroc"][0], tci["entity_f1"][1] - tci["entity_f1"][0])
    # Ten times the data: about a third of the width in theory (1/sqrt(10)); at least 1.5x narrower here.
    assert widths[800][0] < widths[80][0] / 1.5 and widths[800][1] < widths[80][1] / 1.5
    assert intervals(MORTALITY, gold, pred, probs, n=50, seed=1) == intervals(
        MORTALITY, gold, pred, probs, n=50, seed=1
    )


def _calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0, 2, (n, 3)))
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return probs, labels


def test_ece_is_the_count_weighted_gap_of_the_reliability_bins():
    probs, labels = _calibrated_sample(300, seed=3)
    bins = [b for b in reliability(probs, labels) if b["count"]]
    by_bins = sum(b["count"] / 300 * abs(b["accuracy"] - b["confidence"]) for b in bins)
    assert ece(probs, labels) == pytest.approx(by_bins, abs=1e-12)
    wrong = np.roll(probs, 1, axis=1)  # the same confidences on the wrong labels
    assert ece(wrong, labels) > 3 * ece(probs, labels)


def test_the_ece_floor_is_what_calibrated_data_show_and_shrinks_with_size():
    floors = {}
    for n in (200, 2000):
        probs, labels = _calibrated_sample(n, seed=n)
        floor = ece_floor(probs, resamples=300, seed=0)
        seen = [ece(*_calibrated_sample(n, seed=1000 + k)) for k in range(40)]
        # the floor predicts the ECE of fresh calibrated samples of this size
        assert floor["mean"] == pytest.approx(np.mean(seen), rel=0.25)
        assert floor["mean"] < floor["p95"]
        floors[n] = floor["mean"]
    assert floors[2000] < floors[200] / 2  # about 1/sqrt(10) in theory
    assert ece_floor(probs, resamples=50, seed=1) == ece_floor(probs, resamples=50, seed=1)


def test_calibration_score_intervals_contain_the_point_and_shrink():
    widths = {}
    for n in (150, 1500):
        probs, labels = _calibrated_sample(n, seed=n)
        ci = score_intervals(probs, labels, resamples=300, seed=0)
        assert ci["nll"][0] <= nll(probs, labels) <= ci["nll"][1]
        widths[n] = ci["brier"][1] - ci["brier"][0]
    assert widths[1500] < widths[150] / 2


# -- through training, the artifact and serving --------------------------------------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=5, size=160)


def fast(**kw):
    return TrainSettings(**{"epochs": 2, "batch_size": 8, "max_length": 48, "bootstrap": 200, **kw})


def test_training_fits_and_stores_the_readout(synth, tmp_path):
    splits = load_dataset(synth["mortality"], MORTALITY)
    result = train(
        MORTALITY, splits, fast(threshold_rule="youden"), tmp_path / "m", backbone=tiny_backbone(), progress=False
    )
    record = json.loads((tmp_path / "m" / "metrics.json").read_text())
    manifest = load_artifact(result.artifact).manifest
    validation = record["calibration"]["validation"]
    assert validation["after"]["nll"] <= validation["before"]["nll"]
    assert manifest.readout.model_dump(mode="json") == record["readout"]
    assert manifest.readout.operating_point.rule == "youden"
    assert (tmp_path / "m" / "reliability.png").stat().st_size > 1000
    for key, (low, high) in manifest.metrics_ci.items():
        assert low <= manifest.metrics[key] <= high, key
    assert record["intervals"]["test_auroc"] == list(manifest.metrics_ci["auroc"])
    card = (result.artifact / "README.md").read_text()
    assert "Operating point" in card and "youden" in card and "95 %" in card
    named = {"vector": "Vector scaling", "temperature": "Temperature scaling", "none": "did not lower its NLL"}
    assert record["calibration"]["method"] == manifest.readout.method and named[manifest.readout.method] in card
    assert "held_out_nll" in record["calibration"] and "Chosen by held-out NLL" in card  # auto, the default
    assert manifest.data["sizes"]["train"] == len(splits["train"])
    test = record["calibration"]["test"]
    for key in ("nll", "brier"):
        assert test["after_intervals"][key][0] <= test["after"][key] <= test["after_intervals"][key][1], key
    assert 0 < test["ece_floor"]["mean"] < test["ece_floor"]["p95"]
    assert "sampling alone" in card


def test_early_stopping_stops_and_keeps_the_best_epoch(synth, tmp_path, monkeypatch):
    splits = {k: v[:40] for k, v in load_dataset(synth["mortality"], MORTALITY).items()}
    scripted = iter([0.3, 0.8, 0.5, 0.4])  # best at epoch 2, two epochs without better: stop after 4
    probe = splits["test"][0].text
    by_epoch = []
    real = trainer_module.evaluate

    def evaluate(model, name, examples, *args, **kw):
        result = real(model, name, examples, *args, **kw)
        score = next(scripted, None)
        if score is not None:
            result.metrics["auroc"] = score
            was_training = model.training
            model.eval()  # as evaluation reads it: no dropout
            by_epoch.append(Predictor(model, name).predict([probe])[0]["probabilities"]["died"])
            model.train(was_training)
        return result

    monkeypatch.setattr(trainer_module, "evaluate", evaluate)
    settings = fast(epochs=8, patience=2, lr=5e-3, calibrate=False, threshold_rule="argmax", bootstrap=0)
    result = train(MORTALITY, splits, settings, tmp_path / "e", backbone=tiny_backbone(), progress=False)
    assert result.cost["stopped_early"] and result.cost["epochs_run"] == 4 and result.cost["best_epoch"] == 2
    model = build_model(load_artifact(result.artifact), tiny_backbone(), name="x")
    kept = Predictor(model, "x").predict([probe])[0]["probabilities"]["died"]
    assert kept == pytest.approx(by_epoch[1], abs=1e-6) and kept != pytest.approx(by_epoch[3], abs=1e-6)


READOUTS = {"temperature": {"temperature": 0.37}, "vector": {"weights": (2.5, 0.6), "biases": (0.3, -0.4)}}


@pytest.fixture(scope="module", params=sorted(READOUTS))
def calibrated_artifact(tmp_path_factory, request):
    """A mortality artifact with a temperature far from 1 (or vector scaling) and an operating point."""
    model = four_task_model(tiny_backbone(seed=0), seed=1)
    point = OperatingPoint(rule="sensitivity:0.9", positive="died", threshold=0.45)
    readout = Readout(**READOUTS[request.param], operating_point=point)
    model.slots["mortality"].readout = readout
    manifest = task_manifest(model, "mortality", readout=readout)
    return save_from_model(
        tmp_path_factory.mktemp("calibrated") / "m", model, "mortality", manifest, smoke_examples(model, "mortality")
    )


TEXTS = ["septic shock , intubated and started on iv vancomycin", "stable", "chest pain treated with iv lasix"]


def test_served_probabilities_are_the_stored_readouts(calibrated_artifact):
    artifact = load_artifact(calibrated_artifact)
    readout = artifact.manifest.readout
    model = build_model(artifact, tiny_backbone(seed=0), "mortality")
    predictor = Predictor(model, "mortality")
    rows = [predictor.encode(t).rows[0] for t in TEXTS]
    with torch.inference_mode():
        raw = model(rows, ["mortality"] * len(rows))
    answers = predictor.predict(TEXTS)
    for logits, answer in zip(raw, answers):
        probs = readout.probabilities(logits)
        assert [answer["probabilities"][label] for label in MORTALITY.labels] == pytest.approx(probs.tolist(), abs=1e-9)
        assert answer["label"] == ("died" if probs[1] >= 0.45 else "survived")
    assert not np.allclose(readout.probabilities(raw[0]), softmax(raw[0].numpy()))  # the calibration is applied


def test_onnx_serves_the_same_calibrated_probabilities(calibrated_artifact, tmp_path):
    pytest.importorskip("onnxruntime")
    from bedside.adapters.onnx.export import export_artifact
    from bedside.adapters.onnx.session import CPU, OnnxModel
    from bedside.adapters.onnx.shared import SharedOnnxModel, export_shared, linear_targets

    artifact = load_artifact(calibrated_artifact)
    m = artifact.manifest
    torch_answers = Predictor(build_model(artifact, tiny_backbone(seed=0), "mortality"), "mortality").predict(TEXTS)
    base = tiny_backbone(seed=0)
    merged = OnnxModel(base.tokenizer, provider=CPU)
    merged.add(
        "mortality",
        export_artifact(calibrated_artifact, base, tmp_path, "fp32"),
        m.task,
        m.max_length,
        readout=m.readout,
    )
    graph, meta = export_shared(base, linear_targets(base), tmp_path)
    shared = SharedOnnxModel(base, graph, meta, provider=CPU)
    shared.add("mortality", artifact)
    for onnx_model in (merged, shared):
        answers = Predictor(onnx_model, "mortality").predict(TEXTS)
        for got, want in zip(answers, torch_answers):
            assert got["label"] == want["label"]
            for label in MORTALITY.labels:
                assert got["probabilities"][label] == pytest.approx(want["probabilities"][label], abs=1e-5)


def biased(n: int, seed: int, offset=(0.0, 1.5, -1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated logits with a per-label offset added: no single temperature undoes it."""
    logits, labels = drawn(n, seed, classes=len(offset))
    return logits + np.asarray(offset), labels


@pytest.mark.parametrize("seed", range(4))
def test_vector_scaling_never_raises_validation_nll_above_the_temperatures(seed):
    from bedside.training.calibration import fit_vector

    logits, labels = drawn(300, seed, sharpness=2.0, classes=2 + seed % 3)
    vector = fit_vector(logits, labels)
    assert min(vector.weights) > 0 and len(vector.biases) == logits.shape[1]
    temperature = fit_temperature(logits, labels)
    assert nll(vector.probabilities(logits), labels) <= nll(softmax(logits, temperature), labels) + 1e-9


def test_auto_calibration_takes_vector_scaling_only_where_held_out_nll_says_so():
    from bedside.training.calibration import choose_calibration, cross_validated_nll, fit_temperature_readout

    logits, labels = biased(1500, 0)  # per-label offsets: vector scaling undoes them
    readout, report = choose_calibration(logits, labels, "auto")
    assert report["method"] == "vector" and readout.weights is not None
    held = report["held_out_nll"]
    assert held["vector"] < held["temperature"]
    assert held["temperature"] == pytest.approx(cross_validated_nll(fit_temperature_readout, logits, labels))
    test_logits, test_labels = biased(1500, 1)
    temperature = fit_temperature(logits, labels)
    assert nll(readout.probabilities(test_logits), test_labels) < nll(softmax(test_logits, temperature), test_labels)
    few, few_labels = biased(8, 2)  # too few to hold any out: the one-parameter fit
    assert choose_calibration(few, few_labels, "auto")[1]["method"] in ("temperature", "none")
    assert choose_calibration(logits, labels, "temperature")[0].weights is None
    assert choose_calibration(logits, labels, "none")[0] == Readout()


def test_vector_scaling_is_checked_against_its_task():
    Readout(weights=(1.0, 2.0), biases=(0.0, 0.1)).check(MORTALITY)
    for bad in (
        {"weights": (1.0, 2.0)},
        {"weights": (1.0, 2.0, 3.0), "biases": (0.0, 0.0, 0.0)},
        {"weights": (1.0, -2.0), "biases": (0.0, 0.0)},
        {"weights": (1.0, 2.0), "biases": (0.0, 0.0), "temperature": 2.0},
    ):
        with pytest.raises(ValueError, match="vector scaling"):
            Readout(**bad).check(MORTALITY)


def test_a_separable_validation_split_does_not_sharpen_without_bound():
    from bedside.training.calibration import T_MIN

    logits = np.array([[2.0, -2.0], [-2.0, 2.0]] * 50)
    labels = np.array([0, 1] * 50)  # every answer right: NLL falls all the way to T -> 0
    assert fit_temperature(logits, labels) == pytest.approx(T_MIN, rel=1e-3)

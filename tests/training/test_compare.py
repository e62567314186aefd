"""``bedside adapters compare``: paired bootstrap differences of two stored versions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bedside.adapters.tasks import PRESETS
from bedside.training.bootstrap import paired_differences
from tests.helpers import save_task_artifacts

TASK = PRESETS["mortality"]


def labels(rng, n: int, accuracy: float, gold: list[str]) -> list[str]:
    other = {"survived": "died", "died": "survived"}
    return [g if rng.random() < accuracy else other[g] for g in gold]


def test_identical_versions_differ_by_nothing():
    rng = np.random.default_rng(0)
    gold = list(rng.choice(["survived", "died"], 200))
    pred = labels(rng, 200, 0.8, gold)
    for diff, low, high in paired_differences(TASK, gold, pred, pred, n=200).values():
        assert diff == low == high == 0


def test_a_clearly_better_version_has_an_interval_above_zero_that_shrinks_with_more_data():
    widths = []
    for n in (200, 2000):
        rng = np.random.default_rng(1)
        gold = list(rng.choice(["survived", "died"], n))
        a, b = labels(rng, n, 0.6, gold), labels(rng, n, 0.9, gold)
        diff, low, high = paired_differences(TASK, gold, a, b, n=300, seed=0)["accuracy"]
        assert low <= diff <= high and low > 0
        widths.append(high - low)
    assert widths[1] < widths[0]


@pytest.fixture()
def two_stored(tmp_path, served_folder):
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.registry import Registry

    store = tmp_path / "store"
    registry = Registry(store)
    for seed in (0, 1):
        folders = save_task_artifacts(tmp_path / f"s{seed}", load_backbone(str(served_folder)), seed, ["mortality"])
        registry.push(folders["mortality"], task="mortality", activate=seed == 0)
    return store


def test_the_command_prints_differences_with_intervals_and_writes_them(two_stored, tmp_path, served_folder):
    import typer

    from bedside.training.cli_compare import compare
    from bedside.training.synth import write_synthetic

    data = write_synthetic(tmp_path / "synth", seed=3, size=40)["mortality"]
    app = typer.Typer()
    app.command()(compare)
    out = tmp_path / "compare.json"
    args = ["mortality", "v1", "v2", "--data", str(data), "--store", str(two_stored), "--bootstrap", "100"]
    result = CliRunner().invoke(app, [*args, "--backbone", str(served_folder), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "95 % paired interval" in result.output and "label agreement (offline)" in result.output
    written = json.loads(out.read_text())
    assert set(written["metrics"]) == {"v1", "v2"}
    for key, d in written["differences"].items():
        assert d["b_minus_a"] == pytest.approx(written["metrics"]["v2"][key] - written["metrics"]["v1"][key], abs=1e-9)
        assert d["low"] <= d["b_minus_a"] <= d["high"]
    # --label-map, as in training: the same notes as a plain CSV, its raw flags' meaning turned around
    generic = tmp_path / "generic"
    generic.mkdir()
    for split in ("train", "val", "test"):
        text = (data / f"{split}.csv").read_text()
        (generic / f"{split}.csv").write_text(text.replace("hospital_expire_flag", "label", 1))
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("value,name\n0,died\n1,survived\n")
    flipped = tmp_path / "flipped.json"
    plain = [*args[:3], "--data", str(generic), *args[5:], "--backbone", str(served_folder), "--format", "csv"]
    result = CliRunner().invoke(app, [*plain, "--label-map", str(swapped), "--json", str(flipped)])
    assert result.exit_code == 0, result.output
    for version, scores in json.loads(flipped.read_text())["metrics"].items():
        assert scores["accuracy"] == pytest.approx(1 - written["metrics"][version]["accuracy"])
    wrong = CliRunner().invoke(app, [*args, "--backbone", str(served_folder), "--label-map", str(swapped)])
    assert wrong.exit_code == 2 and "does not take option" in wrong.output  # MIMIC's flag needs no map
    missing = CliRunner().invoke(app, ["mortality", "v1", "v9", "--data", str(data), "--store", str(two_stored)])
    assert missing.exit_code == 2 and "not_found" in missing.output


def test_a_lora_and_a_full_fine_tuning_version_each_score_on_their_own_base(tmp_path, served_folder):
    """A LoRA version wraps the base's layers and a full fine-tuning version overwrites its weights:
    each must be scored on a base of its own, whichever order they come in."""
    import typer

    from bedside.adapters.artifact import Method
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.registry import Registry
    from bedside.training.cli_compare import compare
    from bedside.training.loaders import load_dataset
    from bedside.training.settings import TrainSettings
    from bedside.training.synth import write_synthetic
    from bedside.training.trainer import train

    data = write_synthetic(tmp_path / "synth", seed=4, size=40)["mortality"]
    splits = {k: v[:24] for k, v in load_dataset(data, TASK).items()}
    registry = Registry(tmp_path / "store")
    for method in (Method.lora, Method.full):
        settings = TrainSettings(method=method, epochs=1, batch_size=8, max_length=48, bootstrap=0, lr=1e-2)
        run = train(TASK, splits, settings, tmp_path / method.value, load_backbone(str(served_folder)), progress=False)
        registry.push(run.artifact, task="mortality")
    app = typer.Typer()
    app.command()(compare)
    metrics = {}
    for a, b in (("v1", "v2"), ("v2", "v1")):
        out = tmp_path / f"{a}{b}.json"
        args = ["mortality", a, b, "--data", str(data), "--store", str(tmp_path / "store"), "--bootstrap", "20"]
        result = CliRunner().invoke(app, [*args, "--backbone", str(served_folder), "--json", str(out)])
        assert result.exit_code == 0, result.output
        metrics[a, b] = json.loads(out.read_text())["metrics"]
    assert metrics["v1", "v2"] == metrics["v2", "v1"]
    assert metrics["v1", "v2"]["v1"] != metrics["v1", "v2"]["v2"]  # two different models were scored

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
    missing = CliRunner().invoke(app, ["mortality", "v1", "v9", "--data", str(data), "--store", str(two_stored)])
    assert missing.exit_code == 2 and "not_found" in missing.output

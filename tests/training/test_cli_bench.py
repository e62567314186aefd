"""``bedside bench train``: bedside's trainer and transformers' Trainer on the same rows."""
from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from training.cli_bench import train_bench
from training.synth import write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=7, size=60)


def _app():
    app = typer.Typer()
    app.command()(train_bench)
    return app


def test_both_trainers_run_and_are_reported(synth, served_folder, tmp_path):
    result = CliRunner().invoke(_app(), ["--task", "ner", "--data", str(synth["ner"]), "--backbone",
                                         str(served_folder), "--limit", "24", "--limit-eval", "12",
                                         "--batch-size", "8", "--max-length", "48", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "train.json").read_text())
    ours, theirs = data["results"]
    assert ours["trainer"] == "bedside" and theirs["trainer"].startswith("transformers")
    for row in (ours, theirs):
        assert row["train_examples_per_s"] > 0 and 0.0 <= row["test_entity_f1"] <= 1.0
    # Same LoRA on the same modules, same head: the same number of trained weights.
    assert ours["trainable_params"] == theirs["trainable_params"]
    assert data["summary"]["speed_ratio_bedside_over_trainer"] > 0
    assert (tmp_path / "train.png").stat().st_size > 0


def test_sequence_tasks_are_refused(synth, served_folder, tmp_path):
    result = CliRunner().invoke(_app(), ["--task", "mortality", "--data", str(synth["mortality"]), "--backbone",
                                         str(served_folder), "--limit", "8", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "token tasks" in " ".join(result.output.split())

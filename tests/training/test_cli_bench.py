"""``bedside bench train``: bedside's trainer and transformers' Trainer on the same rows."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from bedside.training.cli_bench import train_bench
from bedside.training.synth import write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=7, size=60)


def _app():
    app = typer.Typer()
    app.command()(train_bench)
    return app


def test_both_trainers_run_per_seed_and_are_reported(synth, served_folder, tmp_path):
    result = CliRunner().invoke(
        _app(),
        [
            "--task",
            "ner",
            "--data",
            str(synth["ner"]),
            "--backbone",
            str(served_folder),
            "--limit",
            "24",
            "--limit-eval",
            "12",
            "--batch-size",
            "8",
            "--max-length",
            "48",
            "--seeds",
            "0,1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "train.json").read_text())
    means = [r for r in data["results"] if r["seed"] == "mean"]
    runs = [r for r in data["results"] if r["seed"] != "mean"]
    assert [r["trainer"] for r in means] == ["bedside", "transformers Trainer + peft"]
    # Each seed trains both sides; the second seed starts with the Trainer.
    assert [(r["seed"], r["trainer"].split()[0]) for r in runs] == [
        (0, "bedside"),
        (0, "transformers"),
        (1, "transformers"),
        (1, "bedside"),
    ]
    for row in runs:
        assert row["train_examples_per_s"] > 0 and 0.0 <= row["test_entity_f1"] <= 1.0
    ours = [r["test_entity_f1"] for r in runs if r["trainer"] == "bedside"]
    assert means[0]["test_entity_f1"] == pytest.approx(sum(ours) / 2)
    # Same LoRA on the same modules, same head: the same number of trained weights.
    assert means[0]["trainable_params"] == means[1]["trainable_params"]
    summary = data["summary"]
    assert summary["seeds"] == 2 and len(summary["f1_points_paired_differences"]) == 2
    assert summary["f1_points_bedside_minus_trainer"] == pytest.approx(
        100 * (means[0]["test_entity_f1"] - means[1]["test_entity_f1"])
    )
    assert summary["speed_ratio_bedside_over_trainer"] > 0
    assert (tmp_path / "train.png").stat().st_size > 0


def test_bad_seeds_are_refused(synth, served_folder, tmp_path):
    result = CliRunner().invoke(
        _app(),
        [
            "--task",
            "ner",
            "--data",
            str(synth["ner"]),
            "--backbone",
            str(served_folder),
            "--seeds",
            "0,x",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "comma-separated integers" in " ".join(result.output.split())


def test_sequence_tasks_are_refused(synth, served_folder, tmp_path):
    result = CliRunner().invoke(
        _app(),
        [
            "--task",
            "mortality",
            "--data",
            str(synth["mortality"]),
            "--backbone",
            str(served_folder),
            "--limit",
            "8",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "token tasks" in " ".join(result.output.split())

"""``bedside train`` as a data scientist runs it: the printed test table carries its intervals."""

from __future__ import annotations

import json
import re

import typer
from typer.testing import CliRunner

from bedside.training.cli import train
from bedside.training.synth import write_synthetic


def test_train_prints_each_test_metric_with_its_interval(served_folder, tmp_path):
    data = write_synthetic(tmp_path / "synth", seed=3, size=40)["mortality"]
    app = typer.Typer()
    app.command()(train)
    args = ["--task", "mortality", "--data", str(data), "--out", str(tmp_path / "run")]
    flags = ["--backbone", str(served_folder), "--epochs", "1", "--batch-size", "8", "--max-length", "48"]
    result = CliRunner().invoke(app, [*args, *flags, "--bootstrap", "50"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    low, high = json.loads((tmp_path / "run" / "metrics.json").read_text())["intervals"]["test_accuracy"]
    row = next(line for line in result.output.splitlines() if re.search(r"\btest_accuracy\b", line))
    assert f"{low:.4f} – {high:.4f}" in row

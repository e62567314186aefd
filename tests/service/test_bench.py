"""``bedside bench`` parts on the tiny base: each writes JSON, Markdown and a plot with sane figures."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.bench.cli import app


def _run(args, out):
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result


def test_model_part(served_folder, tmp_path):
    _run(["model", "--backbone", str(served_folder), "--batches", "1,4", "--lengths", "16", "--rounds", "1"], tmp_path)
    data = json.loads((tmp_path / "model.json").read_text())
    assert [r["batch"] for r in data["results"]] == [1, 4]
    for row in data["results"]:
        assert row["bare_s"] > 0 and row["bank_mixed4_ratio"] > 0
        assert row["max_abs_diff_bank_vs_peft"] <= 1e-4
    assert (tmp_path / "model.md").is_file() and (tmp_path / "model.png").stat().st_size > 0


def test_onnx_part(served_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    _run(["onnx", "--backbone", str(served_folder), "--batches", "1,4", "--length", "16", "--rounds", "1",
          "--device", "cpu"], tmp_path)
    data = json.loads((tmp_path / "onnx.json").read_text())
    assert data["summary"]["provider"] == "CPUExecutionProvider"
    assert "Attention" in data["summary"]["fused_ops"]["fp32"]
    for row in data["results"]:
        assert row["merged_fp32_prob_diff"] <= 1e-3 and row["shared_fp32_prob_diff"] <= 1e-3
        assert row["merged_int8_prob_diff"] <= 0.2  # quantised: close, not equal
        assert all(row[k] > 0 for k in row if k.endswith("_speedup"))
    assert "merged_int8_one_speedup" in (tmp_path / "onnx.md").read_text()
    assert (tmp_path / "onnx.png").stat().st_size > 0

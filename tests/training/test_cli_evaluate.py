"""``bedside evaluate``: torch, and the ONNX export compared with it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bedside.adapters.artifact import Method
from bedside.adapters.backbones import load_backbone
from bedside.adapters.tasks import PRESETS
from bedside.training.cli import evaluate
from bedside.training.loaders import load_dataset
from bedside.training.settings import TrainSettings
from bedside.training.synth import write_synthetic
from bedside.training.trainer import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=5, size=60)


def _app():
    import typer

    app = typer.Typer()
    app.command()(evaluate)
    return app


def _trained(synth, served_folder, tmp_path, task, method=Method.lora):
    splits = {k: v[:16] for k, v in load_dataset(synth[task], PRESETS[task]).items()}
    settings = TrainSettings(method=method, epochs=1, batch_size=8, max_length=48)
    return train(
        PRESETS[task], splits, settings, tmp_path / "run", backbone=load_backbone(str(served_folder)), progress=False
    ).artifact


@pytest.mark.parametrize("task,method", [("ner", Method.lora), ("mortality", Method.full)])
def test_onnx_fp32_agrees_with_torch(synth, served_folder, tmp_path, task, method):
    artifact = _trained(synth, served_folder, tmp_path, task, method)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        _app(),
        [
            "--adapter",
            str(artifact),
            "--data",
            str(synth[task]),
            "--backend",
            "onnx",
            "--variant",
            "fp32",
            "--device",
            "cpu",
            "--onnx-cache",
            str(tmp_path / "cache"),
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["onnx"]["backend"] == "onnx:merged:fp32:CPUExecutionProvider"
    assert data["onnx"]["label_agreement_with_torch"] == 1.0
    assert data["onnx"]["n"] == data["torch"]["n"] > 0
    assert all(abs(d) < 1e-6 for d in data["onnx"]["metric_delta"].values() if d is not None)


def test_onnx_int8_and_torch_only(synth, served_folder, tmp_path):
    artifact = _trained(synth, served_folder, tmp_path, "mortality")
    for args in (["--backend", "onnx", "--variant", "int8", "--onnx-cache", str(tmp_path / "cache")], []):
        out = tmp_path / "eval.json"
        result = CliRunner().invoke(
            _app(),
            [
                "--adapter",
                str(artifact),
                "--data",
                str(synth["mortality"]),
                "--device",
                "cpu",
                "--json",
                str(out),
                *args,
            ],
        )
        assert result.exit_code == 0, result.output
        data = json.loads(out.read_text())
        assert "auroc" in data["metrics"]
        assert ("onnx" in data) is bool(args)
        if args:
            assert 0.0 <= data["onnx"]["label_agreement_with_torch"] <= 1.0
        else:  # intervals and calibration as served are printed and written
            low, high = data["intervals"]["accuracy"]
            assert low <= data["metrics"]["accuracy"] <= high
            assert set(data["calibration"]) == {"before", "after", "ece_floor"}
            assert "ece" in data["calibration"]["after"]
            assert "95 % interval" in result.output and "calibration (T =" in result.output


def test_unknown_backend_is_refused(synth, served_folder, tmp_path):
    artifact = _trained(synth, served_folder, tmp_path, "mortality")
    result = CliRunner().invoke(
        _app(), ["--adapter", str(artifact), "--data", str(synth["mortality"]), "--backend", "tensorrt"]
    )
    assert result.exit_code == 2 and "torch or onnx" in result.output


def test_onnx_shared_design_agrees_with_torch_and_refuses_full_fine_tuning(synth, served_folder, tmp_path):
    common = ["--backend", "onnx", "--design", "shared", "--variant", "fp32", "--device", "cpu"]
    common += ["--onnx-cache", str(tmp_path / "cache"), "--bootstrap", "0"]
    lora = _trained(synth, served_folder, tmp_path / "lora", "ner")
    out = tmp_path / "eval.json"
    args = ["--adapter", str(lora), "--data", str(synth["ner"]), "--json", str(out), *common]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["onnx"]["backend"] == "onnx:shared:fp32:CPUExecutionProvider"
    assert data["onnx"]["label_agreement_with_torch"] == 1.0
    full = _trained(synth, served_folder, tmp_path / "full", "mortality", Method.full)
    refused = CliRunner().invoke(_app(), ["--adapter", str(full), "--data", str(synth["mortality"]), *common])
    assert refused.exit_code != 0 and "plain LoRA adapters only" in refused.output

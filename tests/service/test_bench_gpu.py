"""The GPU suite's CPU dry run: the script a GPU machine runs, exercised end to end here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bedside.service.bench import gpu
from bedside.service.bench.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_of_the_shell_script_writes_every_part(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "gpu-suite.sh"), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["dry_run"] and report["environment"]["torch"]
    mixed = report["parts"]["mixed4"]
    assert {(r["dtype"], r["batch"]) for r in mixed} == {(d, b) for d in ("float32", "bfloat16") for b in (1, 2)}
    assert all(r["bare_tokens_per_s"] > 0 and r["bank_mixed4_over_bare"] > 0 for r in mixed)
    assert report["parts"]["notes"][0]["windows"] >= report["parts"]["notes"][0]["notes"] > 0
    memory = report["parts"]["memory"][0]
    assert 0 < memory["per_adapter_mb"] < memory["encoder_mb"]
    http = report["parts"]["http"]  # a real bentoml server on the CPU, the tiny shape
    assert [r["concurrency"] for r in http] == [1, 2]
    assert all(r["errors"] == 0 and r["rps"] > 0 and r["pipeline_rps"] > 0 for r in http), http
    assert "Starting production HTTP BentoServer" in (tmp_path / "http-server.log").read_text()
    assert "## mixed4" in (tmp_path / "gpu.md").read_text() and "## http" in (tmp_path / "gpu.md").read_text()


def test_time_budget_skips_and_says_so(tmp_path):
    result = CliRunner().invoke(app, ["gpu", "--dry-run", "--budget-s", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["parts"]["mixed4"] == [] and report["parts"]["http"] == []
    assert any("time budget" in s for s in report["skipped"])


def test_missing_packages_are_named_with_the_pip_line_that_fetches_them():
    assert gpu.missing({"json": "stdlib", "no_such_module_here": "no-such-dist"}) == ["no-such-dist"]
    line = gpu.wheel_advice(["pydantic", "no-such-dist"])
    pinned = gpu.pins()["pydantic"]
    assert f"pydantic=={pinned}" in line and " no-such-dist" in line
    assert "--python-version 3.12" in line and "--only-binary=:all:" in line and "--no-deps" in line
    assert "--no-deps" not in gpu.wheel_advice(["bentoml"], deps=True)  # bentoml brings dozens

"""``bedside sweep`` / ``report`` / ``pretrain`` on the tiny base and synthetic data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from bedside.training.study.config import load_config
from bedside.training.study.plan import expand
from bedside.training.synth import write_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=11, size=60)


def study_file(tmp_path, synth, served_folder, **changes):
    config = {
        "name": "tiny",
        "out": str(tmp_path / "out"),
        "backbones": [{"spec": str(served_folder), "label": "tiny"}],
        "methods": ["lora", "full"],
        "tasks": [{"task": "mortality", "data": str(synth["mortality"])}, {"task": "ner", "data": str(synth["ner"])}],
        "seeds": [0],
        "train": {"epochs": 1, "batch_size": 8, "max_length": 48},
        **changes,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args):
    import typer

    from bedside.cli import _register

    app = typer.Typer()
    _register(app)
    return CliRunner().invoke(app, list(args))


def test_plan_is_the_grid_plus_side_studies(tmp_path, synth, served_folder):
    path = study_file(
        tmp_path, synth, served_folder, ranks=[8, 16], few_shot=[4], time_budgets=[0.5], side={"tasks": ["ner"]}
    )
    runs = expand(load_config(path))
    assert [r.study for r in runs].count("main") == 4  # 1 backbone x 2 methods x 2 tasks x 1 seed
    side = [r for r in runs if r.study != "main"]
    assert {(r.study, r.task) for r in side} == {("rank", "ner"), ("few_shot", "ner"), ("time_budget", "ner")}
    assert len({r.run_id for r in runs}) == len(runs) == 8
    assert _cli("sweep", str(path), "--count").output.strip() == "8"


def test_sweep_resumes_after_a_kill_and_records_failures(tmp_path, synth, served_folder):
    path = study_file(
        tmp_path,
        synth,
        served_folder,
        tasks=[
            {"task": "mortality", "data": str(synth["mortality"])},
            {"task": "ner", "data": str(synth["ner"])},
            {"task": "ner", "data": str(tmp_path / "missing"), "label": "broken"},
        ],
    )
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bedside.cli", "sweep", str(path), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("runs/*/result.json")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # killed mid-sweep
    process.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert finished, "the first run finished before the kill"
    assert len(finished) < 6
    result = _cli("sweep", str(path), "--no-progress")
    assert result.exit_code == 0, result.output
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert len(after) == 6  # 2 methods x 3 tasks
    assert all(after[name] == mtime for name, mtime in finished.items())  # not redone
    failed = [json.loads(p.read_text()) for p in out.glob("runs/*broken*/result.json")]
    assert len(failed) == 2 and all(f["status"] == "failed" and "missing" in f["error"] for f in failed)
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("run_id,study,backbone")
    listing = _cli("sweep", str(path), "--list").output
    assert listing.count("\tok") == 4 and listing.count("\tfailed") == 2


def test_index_runs_one_run(tmp_path, synth, served_folder):
    path = study_file(tmp_path, synth, served_folder, methods=["lora"])
    result = _cli("sweep", str(path), "--index", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert [p.parent.name for p in (tmp_path / "out").glob("runs/*/result.json")] == [
        expand(load_config(path))[1].run_id
    ]
    assert _cli("sweep", str(path), "--index", "9").exit_code == 2


def test_report_renders_all_sections(tmp_path, synth, served_folder):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the patient was given lasix for edema and improved ."] * 40))
    path = study_file(
        tmp_path,
        synth,
        served_folder,
        methods=["lora", "full", "ia3"],
        backbones=[
            {"spec": str(served_folder), "label": "tiny"},
            {
                "label": "tiny-domain",
                "domain": "clinical",
                "pretrain": {
                    "base": str(served_folder),
                    "corpus": [str(corpus)],
                    "steps": 3,
                    "batch_size": 4,
                    "max_length": 32,
                },
            },
        ],
        ranks=[8, 16],
        few_shot=[4, 8],
        time_budgets=[0.5],
        side={"tasks": ["ner"]},
    )
    result = _cli("sweep", str(path), "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "backbones" / "tiny-domain" / "pretrain.json").read_text())["steps"] == 3
    result = _cli("report", str(tmp_path / "out" / "results.csv"))
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    for n in range(1, 7):
        assert f"## {n}." in report
    for name in ("fig1_params", "fig2_domain", "fig3_time", "fig4_efficiency", "fig5_rank"):
        png = tmp_path / "out" / "report" / f"{name}.png"
        assert png.stat().st_size > 5000 and f"({name}.png)" in report
    assert "LoRA close to full fine-tuning" in report and "weaker than LoRA on NER" in report
    assert "Domain pre-training helps the smallest model" in report
    assert "| tiny-domain |" in report


def test_pretrain_writes_a_loadable_backbone(tmp_path, served_folder):
    from bedside.adapters.backbones import load_backbone

    corpus = tmp_path / "notes.tsv"
    corpus.write_text("Lasix\tB-Chemical\nfor\tO\nedema\tB-Disease\n\nAspirin\tB-Chemical\ngiven\tO\n")
    result = _cli(
        "pretrain",
        "--corpus",
        str(corpus),
        "--out",
        str(tmp_path / "bb"),
        "--backbone",
        str(served_folder),
        "--steps",
        "2",
        "--batch-size",
        "2",
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "bb" / "pretrain.json").read_text())
    assert record["passages"] == 2
    adapted = load_backbone(str(tmp_path / "bb"))
    assert adapted.fingerprint != load_backbone(str(served_folder)).fingerprint  # the weights moved
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert _cli("pretrain", "--corpus", str(empty), "--out", str(tmp_path / "x")).exit_code == 2


@pytest.mark.parametrize("name", ["example", "paper"])
def test_shipped_study_files_parse(name):
    from pathlib import Path

    config = load_config(Path(ROOT) / "training" / "study" / "configs" / f"{name}.yaml")
    runs = expand(config)
    methods = {r.method for r in runs}
    assert {"lora", "ia3", "prompt", "full"} <= methods and {r.study for r in runs} == {
        "main",
        "rank",
        "few_shot",
        "time_budget",
    }
    assert any(b.domain != "general" for b in config.backbones)


def test_synthetic_data_and_subsets(tmp_path, served_folder):
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "out": str(tmp_path / "out"),
                "backbones": [{"spec": str(served_folder), "label": "tiny"}],
                "tasks": [{"task": "ner", "data": "synth:ner:60", "max_train": 10, "max_eval": 5}],
                "train": {"epochs": 1, "batch_size": 8, "max_length": 48},
            }
        )
    )
    result = _cli("sweep", str(path), "--no-progress")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("runs/*/result.json")]
    assert record["status"] == "ok" and record["cost"]["train_examples"] == 10
    assert (tmp_path / "out" / "data" / "synth-60" / "ner").is_dir()


def test_fast_mlm_loss_equals_the_stock_loss(served_folder):
    import torch
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from bedside.adapters.backbones import load_backbone
    from bedside.training.pretrain import mlm_loss

    backbone = load_backbone(str(served_folder))
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(backbone.encoder.config).eval()
    collator = DataCollatorForLanguageModeling(backbone.tokenizer, mlm_probability=0.3)
    batch = collator(
        [
            {"input_ids": backbone.tokenizer(t)["input_ids"]}
            for t in ["lasix was given for edema", "the patient improved after aspirin and heparin were started"]
        ]
    )
    assert torch.allclose(mlm_loss(model, batch), model(**batch).loss, atol=1e-5)


def test_parallel_workers_run_every_run_once(tmp_path, synth, served_folder):
    path = study_file(tmp_path, synth, served_folder, methods=["lora"], seeds=[0, 1])
    result = _cli("sweep", str(path), "--workers", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("runs/*/result.json")]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 5
    assert len(list((tmp_path / "out" / "logs").glob("run-*.log"))) == 4

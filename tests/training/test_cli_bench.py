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
    assert summary["seeds"] == 2 and len(summary["points_paired_differences"]) == 2
    assert summary["points_first_minus_second"] == pytest.approx(
        100 * (means[0]["test_entity_f1"] - means[1]["test_entity_f1"])
    )
    assert summary["speed_ratio_first_over_second"] > 0
    assert summary["epoch_time_ratio_first_over_second"] == pytest.approx(1 / summary["speed_ratio_first_over_second"])
    assert (tmp_path / "train.png").stat().st_size > 0


def test_lora_against_full_fine_tuning(synth, served_folder, tmp_path):
    args = ["--task", "mortality", "--data", str(synth["mortality"]), "--backbone", str(served_folder)]
    args += ["--limit", "16", "--limit-eval", "12", "--batch-size", "8", "--max-length", "32"]
    result = CliRunner().invoke(_app(), [*args, "--compare", "methods", "--full-lr", "1e-4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "train.json").read_text())
    means = [r for r in data["results"] if r["seed"] == "mean"]
    assert [r["trainer"] for r in means] == ["lora (bedside trainer)", "full fine-tuning (bedside trainer)"]
    assert means[0]["trainable_params"] < means[1]["trainable_params"]  # LoRA trains a small share
    assert data["summary"]["metric"] == "test_auroc" and data["summary"]["compare"] == "methods"
    for run in (r for r in data["results"] if r["seed"] != "mean"):  # each side's run with its interval
        assert run["test_auroc_low"] <= run["test_auroc"] <= run["test_auroc_high"]
    bad = CliRunner().invoke(_app(), [*args, "--compare", "speed", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "trainers or methods" in bad.output


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


def test_step_profile_measures_each_variant_in_its_own_process(synth, served_folder, tmp_path):
    from bedside.training.cli_bench import step_bench

    app = typer.Typer()
    app.command()(step_bench)
    args = ["--task", "ner", "--data", str(synth["ner"]), "--backbone", str(served_folder), "--steps", "2"]
    variants = ",peft+torchdropout,mmap4+thp"
    result = CliRunner().invoke(app, [*args, "--batch-size", "4", "--variants", variants, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    default, peft, huge = json.loads((tmp_path / "step.json").read_text())["results"]
    assert default["fast_dropout_layers"] > 0 and peft["fast_dropout_layers"] == 0
    assert default["mmap_threshold_mb"] == 1 and huge["mmap_threshold_mb"] == 4
    assert "hugetlb=1" in huge["glibc_tunables"] and "hugetlb" not in default["glibc_tunables"]
    assert default["variant"] == "default" and default["fused_lora_layers"] > 0 and peft["fused_lora_layers"] == 0
    assert default["time_vs_first"] == 1.0 and peft["steps"] == default["steps"] == 2
    assert default["saved_activations_mb_longest_batch"] > 0 and default["peak_rss_mb"] >= default["final_rss_mb"] * 0.5
    assert (tmp_path / "step.png").stat().st_size > 0


def test_interleaved_variants_take_turns_in_one_process_with_a_ratio_interval(synth, served_folder, tmp_path):
    from bedside.training.cli_bench import step_bench

    app = typer.Typer()
    app.command()(step_bench)
    args = ["--task", "ner", "--data", str(synth["ner"]), "--backbone", str(served_folder), "--steps", "4"]
    args += ["--batch-size", "4", "--interleave", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--variants", ",full"])
    assert result.exit_code == 0, result.output
    lora, full = json.loads((tmp_path / "step.json").read_text())["results"]
    assert lora["time_vs_first"] == 1.0 and lora["steps"] == full["steps"] == 3  # the first step is a warm-up
    assert full["time_vs_first_low"] <= full["time_vs_first"] <= full["time_vs_first_high"]
    assert full["trainable_params"] > 2 * lora["trainable_params"] and lora["fused_lora_layers"] > 0
    assert lora["process_peak_rss_mb"] == full["process_peak_rss_mb"] > 0
    mixed = CliRunner().invoke(app, [*args, "--variants", ",heap"])  # allocator settings differ: not one process
    assert mixed.exit_code == 2 and "same for all" in mixed.output
    typo = CliRunner().invoke(app, [*args, "--variants", ",torchdropuot"])  # not silently the default recipe
    assert typo.exit_code == 2 and "unknown change 'torchdropuot'" in " ".join(typo.output.split())

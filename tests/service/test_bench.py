"""``bedside bench`` parts on the tiny base: each writes JSON, Markdown and a plot with sane figures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bedside.service.bench.cli import app


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
    _run(
        [
            "onnx",
            "--backbone",
            str(served_folder),
            "--batches",
            "1,4",
            "--length",
            "16",
            "--rounds",
            "1",
            "--device",
            "cpu",
        ],
        tmp_path,
    )
    data = json.loads((tmp_path / "onnx.json").read_text())
    assert data["summary"]["provider"] == "CPUExecutionProvider"
    assert "Attention" in data["summary"]["fused_ops"]["fp32"]
    for row in data["results"]:
        assert row["merged_fp32_prob_diff"] <= 1e-3 and row["shared_fp32_prob_diff"] <= 1e-3
        assert row["merged_int8_prob_diff"] <= 0.2 and row["shared_int8_prob_diff"] <= 0.2  # close, not equal
        assert all(row[k] > 0 for k in row if k.endswith("_speedup"))
    assert "merged_int8_one_speedup" in (tmp_path / "onnx.md").read_text()
    resident = data["summary"]["resident_mb"]
    assert resident["merged_int8_one_mb"] > 0 and resident["shared_int8_four_mb"] > 0
    assert {"shared_int8_mixed4_vs_bare", "torch_int8_mixed4_vs_bare", "shared_int8_prob_diff"} <= set(row)
    assert (tmp_path / "onnx.png").stat().st_size > 0


def test_memory_part(served_folder, tmp_path):
    _run(["memory", "--backbone", str(served_folder), "--adapters", "8"], tmp_path)
    data = json.loads((tmp_path / "memory.json").read_text())
    s = data["summary"]
    assert s["full_copy_params"] > s["per_adapter_params"] > 0
    assert s["full_copy_mb"] > 0 and [r["adapters"] for r in data["results"]] == [0, 8]
    assert (tmp_path / "memory.png").stat().st_size > 0


def test_pipeline_baseline_answers_every_task(served_folder):
    from bedside.adapters.backbones import load_backbone
    from bedside.service.bench.baseline import build_pipelines, call, sequential
    from bedside.service.bench.workload import requests

    pipes = build_pipelines(load_backbone(str(served_folder)))
    items = requests(8, words=20)
    for task, item in items[:4]:
        assert call(pipes, task, item) is not None
    result = sequential(pipes, items, seconds=0.5, warmup=4)
    assert result["answered"] > 0 and result["rps"] > 0


def test_in_process_throughput_of_the_served_composition(store, served_folder):
    from bedside.service.bench.service import in_process, load_runtime
    from bedside.service.bench.workload import requests

    runtime = load_runtime(store, str(served_folder))
    rates = in_process(runtime, requests(16, words=1), [1, 4], rounds=1)
    assert set(rates) == {1, 4} and all(v > 0 for v in rates.values())


def test_bare_rate_runs_the_plain_encoder_on_the_same_rows(store, served_folder):
    from bedside.adapters.backbones import load_backbone
    from bedside.service.bench.service import bare_rate, encoded, load_runtime
    from bedside.service.bench.workload import requests

    rows, _ = encoded(load_runtime(store, str(served_folder)), requests(6, words=3))
    rates = bare_rate(load_backbone(str(served_folder)).encoder.eval(), rows, [1, 8], rounds=1)
    assert set(rates) == {1, 8} and all(v > 0 for v in rates.values())


def test_service_part_on_a_real_server(store, served_folder, tmp_path):
    _run(
        [
            "service",
            "--store",
            str(store),
            "--backbone",
            str(served_folder),
            "--concurrency",
            "1,4",
            "--seconds",
            "1",
            "--baseline-seconds",
            "0.5",
            "--rounds",
            "1",
            "--words",
            "1",
        ],
        tmp_path,
    )
    data = json.loads((tmp_path / "service.json").read_text())
    assert [r["concurrency"] for r in data["results"]] == [1, 4]
    for row in data["results"]:
        assert row["errors"] == 0 and row["answered"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["service_over_in_process"] > 0 and row["service_over_baseline"] > 0
        assert row["bare_torch_seq_per_s"] > 0 and row["bare_torch_over_baseline"] > 0
        assert 0 < row["fraction_of_matmul_peak"] < 1
    summary = data["summary"]
    assert summary["baseline_rps"] > 0 and summary["bare_torch_ceiling_over_baseline"] > 0
    # Local rates measured before and after the server's load; the ratios use their mean.
    before, after = summary["local_rates_before"], summary["local_rates_after"]
    assert set(before) == set(after) == {"in_process", "bare", "baseline"}
    first = data["results"][0]
    assert first["in_process_seq_per_s"] == pytest.approx((before["in_process"]["1"] + after["in_process"]["1"]) / 2)
    assert summary["baseline_rps"] == pytest.approx((before["baseline"]["rps"] + after["baseline"]["rps"]) / 2)
    assert (tmp_path / "service_throughput.png").is_file() and (tmp_path / "service_latency.png").is_file()


def test_swap_part_on_a_real_server(store, served_folder, tmp_path):
    _run(
        [
            "swap",
            "--store",
            str(store),
            "--backbone",
            str(served_folder),
            "--swaps",
            "3",
            "--clients",
            "2",
            "--words",
            "1",
        ],
        tmp_path,
    )
    data = json.loads((tmp_path / "swap.json").read_text())
    s = data["summary"]
    assert s["swaps"] == s["swaps_ok"] == 3 and s["failed_requests"] == 0 and s["requests"] > 0
    versions = [e["version"] for e in data["results"]]
    assert versions[0] != versions[1] and versions[0] == versions[2]  # back and forth
    assert all(e["first_answer_ms"] > 0 for e in data["results"])
    assert s["probe_request_ms_p50_outside_swaps"] > 0


def test_swap_part_uploads_then_activates(store, served_folder, tmp_path):
    _run(
        [
            "swap",
            "--store",
            str(store),
            "--backbone",
            str(served_folder),
            "--swaps",
            "2",
            "--clients",
            "1",
            "--words",
            "1",
            "--mode",
            "uploaded",
        ],
        tmp_path,
    )
    data = json.loads((tmp_path / "swap.json").read_text())
    s = data["summary"]
    assert s["mode"] == "uploaded" and s["swaps"] == s["swaps_ok"] == 2 and s["failed_requests"] == 0
    assert s["upload_ms_p50"] > 0
    versions = [e["version"] for e in data["results"]]
    assert len(set(versions)) == 2  # a new version per swap


def test_flood_part_on_a_real_server(store, served_folder, tmp_path):
    _run(
        ["flood", "--store", str(store), "--backbone", str(served_folder), "--flooders", "3", "--seconds", "1"],
        tmp_path,
    )
    data = json.loads((tmp_path / "flood.json").read_text())
    assert [r["phase"] for r in data["results"]] == ["alone (before)", "3 clients flooding", "alone (after)"]
    summary = data["summary"]
    assert summary["flood_answers_other_than_413_422"] == {} and set(summary["flood_statuses"]) == {
        "flood:words",
        "flood:unknown",
        "flood:tokens",
    }
    assert all(errors == {} for errors in summary["probe_errors"].values()), summary["probe_errors"]
    assert summary["livez_p99_ms_flooded"] > 0 and summary["predict_p50_over_unloaded"] > 0
    assert (tmp_path / "flood.png").is_file()


def test_notes_part_on_a_real_server(store, served_folder, tmp_path):
    import csv
    import random

    from bedside.training.synth_long import long_note

    data = tmp_path / "notes.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "split", "note", "dialogue"])
        for i in range(6):
            writer.writerow(
                [f"n{i}", "test", long_note(random.Random(i), "n", 60).text, "doctor: how are you ?\npatient: fine ."]
            )
    args = ["notes", "--store", str(store), "--backbone", str(served_folder), "--data", str(data)]
    args += ["--concurrency", "1,2", "--seconds", "3", "--warmup", "0.5", "--baseline-seconds", "0.5", "--coverage"]
    _run(args, tmp_path)
    result = json.loads((tmp_path / "notes.json").read_text())
    assert [r["clients"] for r in result["results"]] == [1, 2]
    assert result["summary"]["server"]["backend"] == "torch"
    assert len(result["summary"]["bare_seconds_per_row_token_brackets"]) == 3  # before, between and after the levels
    for row in result["results"]:
        assert row["errors"] == 0 and row["answered"] > 0 and row["tokens_per_s"] > 0
        assert row["service_over_bare"] > 0 and row["service_over_pipeline"] > 0
        assert row["p50_ms"] <= row["p99_ms"]
    coverage = result["summary"]["coverage"]
    assert coverage["texts"] == 12 and coverage["errors"] == 0 and coverage["over_time_limit"] == 0
    assert set(coverage["statuses"]) >= {"mortality", "length_of_stay", "ner", "extract"}
    assert (tmp_path / "notes_latency.png").is_file() and (tmp_path / "notes_throughput.png").is_file()


def test_shadow_part_on_a_real_server(artifacts, served_folder, tmp_path):
    from bedside.adapters.registry import Registry
    from tests.helpers import active_store

    store = active_store(tmp_path / "store", artifacts[0])
    Registry(store).push(artifacts[1]["mortality"], task="mortality")  # v2, a different seed
    args = ["shadow", "--store", str(store), "--backbone", str(served_folder), "--shadow", "mortality:v2"]
    _run([*args, "--concurrency", "4", "--seconds", "1", "--rounds", "1", "--words", "4"], tmp_path / "out")
    data = json.loads((tmp_path / "out" / "shadow.json").read_text())
    assert [r["shadow"] for r in data["summary"]["phases"]] == ["none", "mortality:v2", "none"]
    assert [r["shadow"] for r in data["results"]] == ["none", "mortality:v2"]
    assert data["summary"]["errors"] == 0
    assert data["results"][0]["time_per_request_over_none"] == pytest.approx(1.0)
    shares = data["summary"]["token_share_per_task"]
    assert set(shares) == {"mortality", "length_of_stay", "ner", "relations"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert data["results"][1]["expected_from_tokens"] == pytest.approx(1 + shares["mortality"])
    (pair,) = data["summary"]["agreement"]
    assert (pair["task"], pair["active"], pair["candidate"]) == ("mortality", "v1", "v2")
    assert pair["requests_compared"] > 0 and 0 <= pair["label_agreement"] <= 1
    assert Registry(store).rollout("mortality") is None  # the benchmark leaves no shadow behind
    assert (tmp_path / "out" / "shadow.png").is_file()
    assert "live agreement" in (tmp_path / "out" / "shadow.md").read_text()


def test_shadow_part_refuses_a_malformed_pair(tmp_path):
    result = CliRunner().invoke(
        app, ["shadow", "--store", str(tmp_path), "--shadow", "mortality", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "TASK:VERSION" in result.output

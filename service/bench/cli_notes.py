"""``bedside bench notes``: whole notes through a real server vs the bare encoder and a pipeline per task."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Optional

import typer

from .cli_common import console, int_list, results_folder, show_report

ACI = Path("../shared/data/aci_notes/notes.csv")


def notes(
    store: Path = typer.Option(..., help="adapter store with an active version of every preset task"),
    backbone: str = typer.Option("embedded"),
    data: Path = typer.Option(ACI, exists=True, dir_okay=False, help="notes CSV (ACI-BENCH: note, dialogue columns)"),
    columns: str = typer.Option("note", help="CSV columns to read notes from, comma-separated"),
    limit: int = typer.Option(0, min=0, help="at most this many notes (0: all)"),
    concurrency: str = typer.Option("1,8,32", help="closed-loop client counts"),
    seconds: float = typer.Option(60.0, help="measured seconds per concurrency (after a warm-up)"),
    warmup: float = typer.Option(5.0),
    baseline_seconds: float = typer.Option(30.0, help="pipeline baseline seconds, before and after the load"),
    coverage: bool = typer.Option(
        False, help="first send every note and dialogue once to every task and /extract, counting errors"
    ),
    time_limit_s: float = typer.Option(30.0, help="coverage: an answer slower than this counts as over the limit"),
    coverage_clients: int = typer.Option(
        2,
        min=1,
        help="coverage: concurrent careful clients (a check of every text, not a load test: two keep two cores busy)",
    ),
    coverage_only: bool = typer.Option(False, help="the coverage pass alone (no baselines, no closed loops)"),
    backend: str = typer.Option("torch", help="the server's backend: torch | onnx"),
    onnx_design: str = typer.Option("shared", help="onnx: merged | shared (the one int8 base on CPU)"),
    onnx_variant: str = typer.Option("auto", help="onnx: auto | fp32 | int8"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Tokens/s and notes/s of whole notes at each concurrency, latency against note length (a
    fitted line), against the bare encoder on the same rows and a transformers pipeline per task."""
    from bedside.adapters import reporting as report
    from bedside.adapters.backbones import load_backbone

    from ..server import served
    from . import notes as bench
    from .notes_workload import (
        bare_sample,
        bare_seconds_per_row_token,
        build_requests,
        note_pipelines,
        pipeline_rate,
        read_notes,
    )
    from .service import load_runtime

    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    server = {"store": store, "backbone": backbone, "device": "cpu", "backend": backend}
    if backend == "onnx":
        server.update(onnx_design=onnx_design, onnx_variant=onnx_variant)
    if coverage_only:
        with served(folder / "server.log", timeout=600, **server) as (url, _):
            every = run_coverage(url, read_notes(data, ("note", "dialogue")), coverage_clients, time_limit_s)
        write_coverage(folder, every, {"data": str(data), **{k: str(v) for k, v in server.items()}})
        return
    texts = read_notes(data, tuple(c.strip() for c in columns.split(",") if c.strip()))
    texts = texts[:limit] if limit else texts
    runtime = load_runtime(store, backbone)
    requests = build_requests(runtime, texts)
    max_length = runtime.model.slots[runtime.states["ner"].resident.slot].encoder.max_length
    runtime.stop()
    del runtime
    gc.collect()
    plain = load_backbone(backbone)
    encoder = plain.encoder.eval()
    pipes = note_pipelines(plain, max_length)

    def local(when: str) -> dict:
        rates: dict = {"pipeline": pipeline_rate(pipes, requests, baseline_seconds, max_length)}
        console.print({when: rates})
        return rates

    before = local("before the server load")
    checked = None
    sample = bare_sample(requests)
    with served(folder / "server.log", timeout=600, **server) as (url, _):
        if coverage:
            checked = run_coverage(url, read_notes(data, ("note", "dialogue")), coverage_clients, time_limit_s)
        # The machine's speed drifts by ±15 % within minutes: each level's bare-encoder cost is
        # measured right before and right after it (a sample of the notes, the server idle).
        brackets = [bare_seconds_per_row_token(encoder, sample)]
        results = []
        for clients in int_list(concurrency):
            results.append(asyncio.run(bench.closed_loop(url, requests, clients, seconds, warmup)))
            brackets.append(bare_seconds_per_row_token(encoder, sample))
            console.print({"clients": clients, "bare seconds per row token, after": brackets[-1]})
    after = local("after the server load")
    pipe = {
        task: (before["pipeline"]["seconds_per_token"][task] + after["pipeline"]["seconds_per_token"][task]) / 2
        for task in before["pipeline"]["seconds_per_token"]
    }
    for r, bare in zip(results, ((a + b) / 2 for a, b in zip(brackets, brackets[1:]))):
        answered = r["_samples"]  # (note tokens, seconds, task, row tokens)
        tokens = sum(s[0] for s in answered)
        bare_s = sum(s[3] for s in answered) * bare
        pipe_s = sum(s[0] * pipe[s[2]] for s in answered)
        r.update(
            bare_tokens_per_s=tokens / bare_s if bare_s else float("nan"),
            pipeline_tokens_per_s=tokens / pipe_s if pipe_s else float("nan"),
            service_over_bare=bare_s / r["seconds"],  # the bare encoder's time for the same notes / the service's
            service_over_pipeline=pipe_s / r["seconds"],
        )
    top = max(results, key=lambda r: r["clients"])
    tokens = sorted(r.tokens for r in requests)
    summary = {
        "server": {k: str(v) for k, v in server.items()},
        "notes": len(requests),
        "note_tokens_median": tokens[len(tokens) // 2],
        "note_tokens_max": tokens[-1],
        "rows_per_note_mean": sum(len(r.rows) for r in requests) / len(requests),
        "window_max_length": max_length,
        "clients_for_ratios": top["clients"],
        "service_over_bare": top["service_over_bare"],
        "service_over_pipeline": top["service_over_pipeline"],
        "targets": {"service_over_bare": 0.8, "service_over_pipeline": 1.5},
        "latency_fit": {str(r["clients"]): r.pop("fits") for r in results},
        "bare_seconds_per_row_token_brackets": brackets,
        "bare_sample_notes": len(sample),
        "local_rates_before": before,
        "local_rates_after": after,
    }
    if checked is not None:
        summary["coverage"] = checked
    samples = [r.pop("_samples") for r in results]
    columns_shown = ["clients", "notes_per_s", "tokens_per_s", "p50_ms", "p95_ms", "p99_ms", "errors"]
    columns_shown += ["bare_tokens_per_s", "pipeline_tokens_per_s", "service_over_bare", "service_over_pipeline"]

    def plots(d: Path) -> None:
        fits = summary["latency_fit"]
        with_samples = [{**r, "_samples": s, "fits": fits[str(r["clients"])]} for r, s in zip(results, samples)]
        bench.plot(with_samples, d / "notes_latency.png", f"whole notes: latency vs length ({len(requests)} notes)")
        report.series_plot(
            results,
            "clients",
            {
                "service": "tokens_per_s",
                "bare encoder, same rows": "bare_tokens_per_s",
                "pipeline per task": "pipeline_tokens_per_s",
            },
            "whole notes: note tokens per second",
            d / "notes_throughput.png",
            "concurrent clients",
            "note tokens / s",
        )

    settings = {"store": str(store), "backbone": backbone, "data": str(data), "columns": columns, "seconds": seconds}
    md = report.write(folder, "notes", results, columns_shown, settings, plots=[plots], summary=summary)
    show_report(md, folder)


def run_coverage(url: str, texts: list[str], clients: int, time_limit_s: float) -> dict:
    """The coverage pass with a progress bar (it takes a while on two cores), printed when done."""
    from rich.progress import Progress

    from . import notes as bench

    with Progress(console=console) as bar:
        job = bar.add_task("coverage: notes and dialogues through every task", total=len(texts))
        checked = asyncio.run(
            bench.coverage(url, texts, clients, time_limit_s, lambda done, _: bar.update(job, completed=done))
        )
    console.print({"coverage": checked})
    return checked


def write_coverage(folder: Path, checked: dict, settings: dict) -> None:
    """The coverage pass's JSON and Markdown: a row per endpoint, the whole count above it."""
    from bedside.adapters import reporting as report

    rows = [
        {
            "endpoint": name,
            "answered 200": counts.get("200", 0),
            "errors": checked["errors_by_endpoint"][name],
            "over time limit": checked["over_time_limit_by_endpoint"].get(name, 0),
            "429 retried": checked["retried_after_429"].get(name, 0),
        }
        for name, counts in checked["statuses"].items()
    ]
    columns = list(rows[0]) if rows else []
    show_report(report.write(folder, "coverage", rows, columns, settings, summary=checked), folder)

"""``bedside bench service``: a real server under closed-loop HTTP load vs the same model in
process, vs the bare encoder, vs a transformers pipeline per task."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import console, int_list, results_folder, show_report


def service(
    store: Path = typer.Option(..., help="adapter store with an active version of every preset task"),
    backbone: str = typer.Option("embedded"),
    backend: str = typer.Option("torch", help="torch | onnx (the server's and the in-process figure's)"),
    onnx_variant: str = typer.Option("auto", help="onnx: auto | fp32 | int8"),
    concurrency: str = typer.Option("1,4,16,32,64", help="closed-loop client counts"),
    seconds: float = typer.Option(15.0, help="measured seconds per concurrency (after a 3 s warm-up)"),
    baseline: bool = typer.Option(True, help="also measure the per-request transformers pipeline baseline"),
    baseline_seconds: float = typer.Option(20.0),
    rounds: int = typer.Option(5, help="in-process forwards per batch size"),
    words: int = typer.Option(64, help="words per note at most (64: about 100 tokens for the embedded default)"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """HTTP closed-loop load on a real server vs the same model in process, vs a pipeline per task;
    useful FLOP/s (real tokens) against the machine's matmul peak."""
    from bedside.adapters import reporting as report
    from bedside.adapters.backbones import load_backbone

    from . import service as bench
    from .baseline import build_pipelines, sequential
    from .limit import encoder_flops, matmul_peak
    from .workload import requests

    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    levels = list(int_list(concurrency))
    items = requests(256, words=words)
    peaks = [matmul_peak()]
    console.print(f"matmul peak: {peaks[0] / 1e9:.1f} GFLOP/s")
    extra = {"onnx_variant": onnx_variant} if backend == "onnx" else {}
    runtime = bench.load_runtime(store, backbone, backend, **extra)
    max_rows = runtime.settings.max_batch_rows
    rows, _ = bench.encoded(runtime, items)
    config = runtime.backbone.encoder.config
    flops_per_request = sum(encoder_flops(config, [len(r)]) for r in rows) / len(rows)
    tokens_per_request = sum(len(r) for r in rows) / len(rows)
    batches = sorted({min(c, max_rows) for c in levels})
    plain = load_backbone(backbone)  # no adapters: the bare encoder, and the pipelines copy its weights
    bare_encoder = plain.encoder.eval()
    pipes = build_pipelines(plain) if baseline else None

    def local_rates(when: str) -> dict:
        """In-process, bare-encoder and pipeline rates: measured before and after the server's
        load, so a slow spell of the machine during either one shows and is averaged out."""
        rates = {
            "in_process": bench.in_process(runtime, items, batches, rounds),
            "bare": bench.bare_rate(bare_encoder, rows, batches, rounds),
        }
        if pipes:
            rates["baseline"] = sequential(pipes, items, baseline_seconds)
        console.print(
            {
                when: {k: {b: round(x, 1) for b, x in v.items()} for k, v in rates.items()},
                "tokens_per_request": round(tokens_per_request, 1),
            }
        )
        return rates

    before = local_rates("before the server load")
    results = bench.run_server_load(
        store, backbone, items, levels, seconds, folder / "server.log", backend=backend, **extra
    )
    after = local_rates("after the server load")
    model_rate = {b: (before["in_process"][b] + after["in_process"][b]) / 2 for b in batches}
    bare = {b: (before["bare"][b] + after["bare"][b]) / 2 for b in batches}
    base = {k: (before["baseline"][k] + after["baseline"][k]) / 2 for k in ("rps", "p50_ms")} if pipes else None
    peaks.append(matmul_peak())
    peak = max(peaks)
    for r in results:
        batch = min(r["concurrency"], max_rows)
        r["in_process_seq_per_s"] = model_rate[batch]
        r["bare_torch_seq_per_s"] = bare[batch]
        r["service_over_in_process"] = r["rps"] / model_rate[batch]
        r["useful_gflops"] = r["rps"] * flops_per_request / 1e9
        r["fraction_of_matmul_peak"] = r["rps"] * flops_per_request / peak
        if base:
            r["baseline_rps"] = base["rps"]
            r["service_over_baseline"] = r["rps"] / base["rps"]
            r["bare_torch_over_baseline"] = bare[batch] / base["rps"]
        console.print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
    at32 = next((r for r in results if r["concurrency"] == 32), results[-1])
    summary = {
        "backend": backend,
        "matmul_peak_gflops": peak / 1e9,
        "matmul_peaks_gflops": [p / 1e9 for p in peaks],
        "tokens_per_request": tokens_per_request,
        "concurrency_for_ratios": at32["concurrency"],
        "service_over_in_process": at32["service_over_in_process"],
        "fraction_of_matmul_peak": at32["fraction_of_matmul_peak"],
        "best_fraction_of_matmul_peak": max(r["fraction_of_matmul_peak"] for r in results),
        "local_rates_before": before,
        "local_rates_after": after,
    }
    if base:
        summary.update(
            baseline_rps=base["rps"],
            baseline_p50_ms=base["p50_ms"],
            service_over_baseline=at32["service_over_baseline"],
            best_service_over_baseline=max(r["service_over_baseline"] for r in results),
            # what torch can reach at all here: the bare encoder's best rate over the baseline
            bare_torch_ceiling_over_baseline=max(bare.values()) / base["rps"],
        )
    columns = [
        "concurrency",
        "rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "errors",
        "in_process_seq_per_s",
        "service_over_in_process",
        "bare_torch_seq_per_s",
        *(["baseline_rps", "service_over_baseline", "bare_torch_over_baseline"] if base else []),
        "useful_gflops",
        "fraction_of_matmul_peak",
    ]

    def plots(d: Path) -> None:
        lines = {
            "service (HTTP)": "rps",
            "in-process model, batch = min(C, max rows)": "in_process_seq_per_s",
            "bare torch encoder, same batch (no adapters, no heads)": "bare_torch_seq_per_s",
        }
        if base:
            lines["pipeline per task, one request at a time"] = "baseline_rps"
        report.series_plot(
            results,
            "concurrency",
            lines,
            f"throughput, {backend} backend ({tokens_per_request:.0f} tokens per request)",
            d / "service_throughput.png",
            "concurrent clients",
            "requests (= sequences) per second",
        )
        report.series_plot(
            results,
            "concurrency",
            {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms"},
            f"latency, {backend} backend",
            d / "service_latency.png",
            "concurrent clients",
            "latency (ms)",
        )

    md = report.write(
        folder,
        "service",
        results,
        columns,
        {
            "store": str(store),
            "backbone": backbone,
            "backend": backend,
            **extra,
            "seconds": seconds,
            "words": words,
            "max_batch_rows": max_rows,
        },
        plots=[plots],
        summary=summary,
    )
    show_report(md, folder)

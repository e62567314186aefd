"""``bedside bench``: benchmarks that print and save figures (ratios to a same-run baseline)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks: figures as JSON, Markdown and PNG, ratios to a same-run baseline.",
                  no_args_is_help=True)
console = Console()


def _out(out: Optional[Path]) -> Path:
    return out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _show(md: Path, folder: Path) -> None:
    console.print(md.read_text())
    console.print(f"written to {folder}")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


@app.command("model")
def model(
    batches: str = typer.Option("1,8,32,64"),
    lengths: str = typer.Option("128,256,512"),
    targets: str = typer.Option("qkv", help="qkv | all-linear"),
    rounds: int = typer.Option(5),
    backbone: str = typer.Option("embedded"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Bare base vs one adapter vs four mixed adapters, PEFT and bank, per batch and length."""
    from bedside.adapters.backbones import load_backbone

    from bedside.adapters import reporting as report
    from .limit import encoder_flops, matmul_peak
    from .model import bench_model

    b = load_backbone(backbone)
    folder = _out(out)
    peak = matmul_peak()
    console.print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s")

    def show(row):
        flops = encoder_flops(b.encoder.config, [row["length"]] * row["batch"])
        row["bare_gflops"] = flops / row["bare_s"] / 1e9
        row["bank_mixed4_gflops"] = flops / row["bank_mixed4_s"] / 1e9
        row["bare_fraction_of_peak"] = flops / row["bare_s"] / peak
        console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})

    rows = bench_model(b, _ints(batches), _ints(lengths), targets, rounds, progress=show)
    series = ["peft_one_ratio", "peft_mixed4_ratio", "bank_one_ratio", "bank_mixed4_ratio"]
    columns = ["batch", "length", "bare_s", *series, "bare_seq_per_s", "bare_fraction_of_peak",
               "max_abs_diff_bank_vs_peft"]
    md = report.write(folder, "model", rows, columns,
                      {"backbone": backbone, "targets": targets, "rounds": rounds, "matmul_peak_flops": peak},
                      plots=[lambda d: report.ratio_plot(rows, "batch", series, "length",
                                                         f"forward time vs bare base ({targets}, rank 8)",
                                                         d / "model.png")])
    _show(md, folder)


@app.command("soak")
def soak(
    store: Path = typer.Option(..., help="adapter store with an active version of every task (not modified "
                               "except: a task with a single version gets a copy pushed as a second)"),
    minutes: float = typer.Option(10.0, help="length of the open-loop load"),
    backbone: str = typer.Option("embedded"),
    device: str = typer.Option("auto"),
    rate_fraction: float = typer.Option(0.7, help="load rate as a fraction of the measured capacity"),
    swap_every: float = typer.Option(60.0, help="seconds between activations of another version"),
    swap_task: str = typer.Option("length_of_stay"),
    window: float = typer.Option(10.0, help="seconds per reported window"),
    capacity_seconds: float = typer.Option(20.0, help="closed-loop burst that measures capacity"),
    clients: int = typer.Option(16, help="closed-loop clients for the capacity burst"),
    resident_cap: int = typer.Option(0, help="the server's inactive versions kept loaded; 0: every swap "
                                     "loads from disk and frees the version it replaces"),
    poll_interval: float = typer.Option(2.0, help="the server's store polling interval (s)"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Real server, open-loop mixed load at a fraction of measured capacity, swaps by store polling."""
    from bedside.adapters import reporting as report
    from .soak import Plan, soak as run_soak

    folder = _out(out)
    folder.mkdir(parents=True, exist_ok=True)
    plan = Plan(seconds=minutes * 60, rate_fraction=rate_fraction, swap_every=swap_every, window_s=window,
                capacity_s=capacity_seconds, clients=clients, swap_task=swap_task)
    console.print(f"soak: {minutes:g} min at {rate_fraction:.0%} of capacity, a {swap_task} swap every "
                  f"{swap_every:g} s; server log: {folder / 'server.log'}")
    summary, rows = run_soak(store, backbone, plan, folder / "server.log", device=device,
                             resident_cap=resident_cap, poll_interval_s=poll_interval)
    plots = [lambda d: soak_plots(d, rows, [s["t"] for s in summary["swaps"]], window, swap_task)]
    headline = {k: summary[k] for k in ("target_rps", "achieved_rps", "requests", "dropped", "errors", "error_pct",
                                        "errors_by_status", "p50_ms_first", "p50_ms_last", "p99_ms_first",
                                        "p99_ms_last", "p99_drift_ms", "p99_max_ms", "rss_mb_start",
                                        "rss_mb_first", "rss_mb_last", "rss_drift_mb", "rss_mb_max")}
    headline = {"capacity_rps": summary["capacity"]["capacity_rps"],
                "capacity_after_rps": summary["capacity_after"]["capacity_rps"], **headline,
                "swaps": len(summary["swaps"]),
                "swaps_not_picked_up": sum(s["picked_up_s"] is None for s in summary["swaps"]),
                "swap_pickup_s_max": max((s["picked_up_s"] for s in summary["swaps"] if s["picked_up_s"] is not None),
                                         default=float("nan"))}
    columns = ["window", "t_end_s", "requests", "errors", "p50_ms", "p99_ms", "rss_mb", "load_1m"]
    md = report.write(folder, "soak", rows, columns, {"store": str(store), "backbone": backbone, "device": device,
                                                      "resident_cap": resident_cap, "poll_interval_s": poll_interval,
                                                      **summary["plan"]},
                      plots=plots, summary={**headline, "swap_task_versions": summary["swap_task_versions"],
                                            "swap_versions_answered": summary["swap_versions_answered"],
                                            "capacity": summary["capacity"], "capacity_after": summary["capacity_after"],
                                            "swap_events": summary["swaps"]})
    console.print(md.read_text().split("machine:")[0])
    console.print(f"written to {folder}")
    if summary["server_errors"]:
        raise typer.Exit(1)


def soak_plots(folder: Path, rows: list[dict], swaps_s: list[float], window: float, swap_task: str) -> None:
    """Latency, RSS and errors per window, swaps marked (also rebuilds them from a soak.json's results)."""
    from bedside.adapters import reporting as report

    statuses = sorted({s for r in rows for s in r["errors_by_status"]})
    for r in rows:
        r["t_min"] = r["t_end_s"] / 60
        r.update({f"status_{s}": r["errors_by_status"].get(s, 0) for s in statuses})
    marks, mark = [t / 60 for t in swaps_s], f"{swap_task} swap"
    xlabel = "time since load start (min, window end)"
    total = sum(r["requests"] for r in rows)
    report.series_plot(rows, "t_min", {"p50": "p50_ms", "p99": "p99_ms"}, f"latency per {window:g} s window",
                       folder / "soak_latency.png", xlabel, "latency (ms)", marks, mark)
    report.series_plot(rows, "t_min", {"server RSS (process tree)": "rss_mb"}, "server memory",
                       folder / "soak_rss.png", xlabel, "RSS (MB)", marks, mark)
    errors = {f"status {s}": f"status_{s}" for s in statuses} or {"errors (non-200)": "errors"}
    report.series_plot(rows, "t_min", errors, f"errors per {window:g} s window ({sum(r['errors'] for r in rows)} "
                       f"of {total} requests)", folder / "soak_errors.png", xlabel, "requests answered non-200",
                       marks, mark, style="bar")


@app.command("onnx")
def onnx(
    batches: str = typer.Option("1,8,32"),
    length: int = typer.Option(128, help="tokens per row"),
    rounds: int = typer.Option(5),
    backbone: str = typer.Option("embedded"),
    device: str = typer.Option("auto", help="auto | cpu | cuda: torch's device and the ONNX provider"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """ONNX Runtime (merged fp32/int8 or fp16, shared fp32) vs torch eager, one adapter and four mixed."""
    from bedside.adapters.backbones import load_backbone

    from bedside.adapters.onnx.session import provider_for
    from bedside.adapters import reporting as report
    from .onnx import bench_onnx, variants_for

    provider, _ = provider_for(device)
    torch_device = "cuda" if provider.startswith("CUDA") else "cpu"
    b = load_backbone(backbone, device=torch_device)
    folder = _out(out)
    console.print(f"provider: {provider}; torch on {torch_device}")
    rows, summary = bench_onnx(b, _ints(batches), length, rounds, provider, progress=lambda r: console.print(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
    variants = variants_for(provider)
    series = [f"merged_{v}_one_speedup" for v in variants] + [f"merged_{v}_mixed4_speedup" for v in variants] \
        + ["shared_fp32_mixed4_speedup"]
    columns = ["batch", "length", "torch_one_s", "torch_mixed4_s", *series, "torch_one_seq_per_s",
               *[f"merged_{v}_prob_diff" for v in variants], "shared_fp32_prob_diff"]
    md = report.write(folder, "onnx", rows, columns, {"backbone": backbone, "device": device, "rounds": rounds,
                                                      "length": length},
                      plots=[lambda d: report.ratio_plot(rows, "batch", series, "length",
                                                         f"ONNX Runtime ({provider}) throughput vs torch eager",
                                                         d / "onnx.png", ylabel="speed-up (torch time / time)")],
                      summary=summary)
    _show(md, folder)


@app.command("service")
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

    folder = _out(out)
    folder.mkdir(parents=True, exist_ok=True)
    levels = list(_ints(concurrency))
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
        rates = {"in_process": bench.in_process(runtime, items, batches, rounds),
                 "bare": bench.bare_rate(bare_encoder, rows, batches, rounds)}
        if pipes:
            rates["baseline"] = sequential(pipes, items, baseline_seconds)
        console.print({when: {k: {b: round(x, 1) for b, x in v.items()} for k, v in rates.items()},
                       "tokens_per_request": round(tokens_per_request, 1)})
        return rates

    before = local_rates("before the server load")
    results = bench.run_server_load(store, backbone, items, levels, seconds, folder / "server.log",
                                    backend=backend, **extra)
    after = local_rates("after the server load")
    model_rate = {b: (before["in_process"][b] + after["in_process"][b]) / 2 for b in batches}
    bare = {b: (before["bare"][b] + after["bare"][b]) / 2 for b in batches}
    base = ({k: (before["baseline"][k] + after["baseline"][k]) / 2 for k in ("rps", "p50_ms")}
            if pipes else None)
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
    summary = {"backend": backend, "matmul_peak_gflops": peak / 1e9, "matmul_peaks_gflops": [p / 1e9 for p in peaks],
               "tokens_per_request": tokens_per_request, "concurrency_for_ratios": at32["concurrency"],
               "service_over_in_process": at32["service_over_in_process"],
               "fraction_of_matmul_peak": at32["fraction_of_matmul_peak"],
               "best_fraction_of_matmul_peak": max(r["fraction_of_matmul_peak"] for r in results),
               "local_rates_before": before, "local_rates_after": after}
    if base:
        summary.update(baseline_rps=base["rps"], baseline_p50_ms=base["p50_ms"],
                       service_over_baseline=at32["service_over_baseline"],
                       best_service_over_baseline=max(r["service_over_baseline"] for r in results),
                       # what torch can reach at all here: the bare encoder's best rate over the baseline
                       bare_torch_ceiling_over_baseline=max(bare.values()) / base["rps"])
    columns = ["concurrency", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "in_process_seq_per_s",
               "service_over_in_process", "bare_torch_seq_per_s",
               *(["baseline_rps", "service_over_baseline", "bare_torch_over_baseline"] if base else []),
               "useful_gflops", "fraction_of_matmul_peak"]

    def plots(d: Path) -> None:
        lines = {"service (HTTP)": "rps", "in-process model, batch = min(C, max rows)": "in_process_seq_per_s",
                 "bare torch encoder, same batch (no adapters, no heads)": "bare_torch_seq_per_s"}
        if base:
            lines["pipeline per task, one request at a time"] = "baseline_rps"
        report.series_plot(results, "concurrency", lines, f"throughput, {backend} backend ({tokens_per_request:.0f} "
                           "tokens per request)", d / "service_throughput.png", "concurrent clients",
                           "requests (= sequences) per second")
        report.series_plot(results, "concurrency", {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms"},
                           f"latency, {backend} backend", d / "service_latency.png", "concurrent clients",
                           "latency (ms)")

    md = report.write(folder, "service", results, columns, {"store": str(store), "backbone": backbone,
                                                            "backend": backend, **extra, "seconds": seconds,
                                                            "words": words,
                                                            "max_batch_rows": max_rows}, plots=[plots],
                      summary=summary)
    _show(md, folder)


@app.command("swap")
def swap(
    store: Path = typer.Option(..., help="adapter store; the task gets a second version (a copy) if it has one"),
    backbone: str = typer.Option("embedded"),
    task: str = typer.Option("mortality"),
    swaps: int = typer.Option(10),
    clients: int = typer.Option(4, help="closed-loop mixed load during the swaps"),
    backend: str = typer.Option("torch"),
    words: int = typer.Option(64, help="words per note at most"),
    mode: str = typer.Option("stored", help="stored: activate stored versions in turn (load at activation) | "
                             "uploaded: upload each version through the API (checked and staged), then activate"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Activation → first answer from the new version, and failed requests, under load."""
    from bedside.adapters import reporting as report

    from .swap import MODES, bench_swap

    if mode not in MODES:
        raise typer.BadParameter(" | ".join(MODES), param_hint="--mode")
    folder = _out(out)
    folder.mkdir(parents=True, exist_ok=True)
    events, summary = bench_swap(store, backbone, task, swaps, clients, log_file=folder / "server.log",
                                 words=words, mode=mode, backend=backend)
    columns = ["swap", "version", "status"] + (["upload_ms"] if mode == "uploaded" else []) + [
        "activate_call_ms", "first_answer_ms", "first_answer_after_call_ms"]
    md = report.write(folder, "swap", events, columns,
                      {"store": str(store), "backbone": backbone, "task": task, "clients": clients,
                       "backend": backend, "resident_cap": 0, "mode": mode}, summary=summary,
                      plots=[lambda d: report.series_plot(events, "swap", {"activation → first answer":
                                                                           "first_answer_ms",
                                                                           "activation call": "activate_call_ms"},
                                                          f"{task} swaps ({mode}) under load ({clients} clients)",
                                                          d / "swap.png", "swap", "ms")])
    _show(md, folder)


@app.command("memory")
def memory(
    backbone: str = typer.Option("embedded"),
    adapters: int = typer.Option(32),
    rank: int = typer.Option(8),
    targets: str = typer.Option("qkv", help="qkv | all-linear"),
    lora_path: str = typer.Option("bank", help="bank | peft"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Resident memory per additional adapter vs a full model copy (this process's RSS)."""
    from bedside.adapters import reporting as report
    from bedside.adapters.backbones import load_backbone

    from .memory import bench_memory

    folder = _out(out)
    rows, summary = bench_memory(load_backbone(backbone), adapters, rank, targets, lora=lora_path)
    for r in rows:
        r["full_copy_mb"] = summary["full_copy_mb"]
    md = report.write(folder, "memory", rows, ["adapters", "rss_mb", "added_mb"],
                      {"backbone": backbone, "rank": rank, "targets": targets, "lora_path": lora_path},
                      summary=summary,
                      plots=[lambda d: report.series_plot(rows, "adapters", {"RSS added by adapters": "added_mb",
                                                                             "one full model copy": "full_copy_mb"},
                                                          f"resident memory, LoRA r={rank} ({targets}, {lora_path})",
                                                          d / "memory.png", "resident adapters", "MB")])
    _show(md, folder)

"""``bedside bench``: benchmarks that print and save figures (ratios to a same-run baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import console, int_list, results_folder, show_report
from .cli_service import service

app = typer.Typer(
    help="Benchmarks: figures as JSON, Markdown and PNG, ratios to a same-run baseline.", no_args_is_help=True
)
app.command("service")(service)


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
    from bedside.adapters import reporting as report
    from bedside.adapters.backbones import load_backbone

    from .limit import encoder_flops, matmul_peak
    from .model import bench_model

    b = load_backbone(backbone)
    folder = results_folder(out)
    peak = matmul_peak()
    console.print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s")

    def show(row):
        flops = encoder_flops(b.encoder.config, [row["length"]] * row["batch"])
        row["bare_gflops"] = flops / row["bare_s"] / 1e9
        row["bank_mixed4_gflops"] = flops / row["bank_mixed4_s"] / 1e9
        row["bare_fraction_of_peak"] = flops / row["bare_s"] / peak
        console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})

    rows = bench_model(b, int_list(batches), int_list(lengths), targets, rounds, progress=show)
    series = ["peft_one_ratio", "peft_mixed4_ratio", "bank_one_ratio", "bank_mixed4_ratio"]
    columns = [
        "batch",
        "length",
        "bare_s",
        *series,
        "bare_seq_per_s",
        "bare_fraction_of_peak",
        "max_abs_diff_bank_vs_peft",
    ]
    md = report.write(
        folder,
        "model",
        rows,
        columns,
        {"backbone": backbone, "targets": targets, "rounds": rounds, "matmul_peak_flops": peak},
        plots=[
            lambda d: report.ratio_plot(
                rows, "batch", series, "length", f"forward time vs bare base ({targets}, rank 8)", d / "model.png"
            )
        ],
    )
    show_report(md, folder)


@app.command("soak")
def soak(
    store: Path = typer.Option(
        ...,
        help="adapter store with an active version of every task (not modified "
        "except: a task with a single version gets a copy pushed as a second)",
    ),
    minutes: float = typer.Option(10.0, help="length of the open-loop load"),
    backbone: str = typer.Option("embedded"),
    device: str = typer.Option("auto"),
    rate_fraction: float = typer.Option(0.7, help="load rate as a fraction of the measured capacity"),
    swap_every: float = typer.Option(60.0, help="seconds between activations of another version"),
    swap_task: str = typer.Option("length_of_stay"),
    window: float = typer.Option(10.0, help="seconds per reported window"),
    capacity_seconds: float = typer.Option(20.0, help="closed-loop burst that measures capacity"),
    clients: int = typer.Option(16, help="closed-loop clients for the capacity burst"),
    resident_cap: int = typer.Option(
        0,
        help="the server's inactive versions kept loaded; 0: every swap "
        "loads from disk and frees the version it replaces",
    ),
    poll_interval: float = typer.Option(2.0, help="the server's store polling interval (s)"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Real server, open-loop mixed load at a fraction of measured capacity, swaps by store polling."""
    from bedside.adapters import reporting as report

    from .soak import Plan
    from .soak import soak as run_soak

    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    plan = Plan(
        seconds=minutes * 60,
        rate_fraction=rate_fraction,
        swap_every=swap_every,
        window_s=window,
        capacity_s=capacity_seconds,
        clients=clients,
        swap_task=swap_task,
    )
    console.print(
        f"soak: {minutes:g} min at {rate_fraction:.0%} of capacity, a {swap_task} swap every "
        f"{swap_every:g} s; server log: {folder / 'server.log'}"
    )
    summary, rows = run_soak(
        store,
        backbone,
        plan,
        folder / "server.log",
        device=device,
        resident_cap=resident_cap,
        poll_interval_s=poll_interval,
    )
    plots = [lambda d: soak_plots(d, rows, [s["t"] for s in summary["swaps"]], window, swap_task)]
    headline = {
        k: summary[k]
        for k in (
            "target_rps",
            "achieved_rps",
            "requests",
            "dropped",
            "errors",
            "error_pct",
            "errors_by_status",
            "p50_ms_first",
            "p50_ms_last",
            "p99_ms_first",
            "p99_ms_last",
            "p99_drift_ms",
            "p99_max_ms",
            "rss_mb_start",
            "rss_mb_first",
            "rss_mb_last",
            "rss_drift_mb",
            "rss_mb_max",
        )
    }
    headline = {
        "capacity_rps": summary["capacity"]["capacity_rps"],
        "capacity_after_rps": summary["capacity_after"]["capacity_rps"],
        **headline,
        "swaps": len(summary["swaps"]),
        "swaps_not_picked_up": sum(s["picked_up_s"] is None for s in summary["swaps"]),
        "swap_pickup_s_max": max(
            (s["picked_up_s"] for s in summary["swaps"] if s["picked_up_s"] is not None), default=float("nan")
        ),
    }
    columns = ["window", "t_end_s", "requests", "errors", "p50_ms", "p99_ms", "rss_mb", "load_1m"]
    md = report.write(
        folder,
        "soak",
        rows,
        columns,
        {
            "store": str(store),
            "backbone": backbone,
            "device": device,
            "resident_cap": resident_cap,
            "poll_interval_s": poll_interval,
            **summary["plan"],
        },
        plots=plots,
        summary={
            **headline,
            "swap_task_versions": summary["swap_task_versions"],
            "swap_versions_answered": summary["swap_versions_answered"],
            "capacity": summary["capacity"],
            "capacity_after": summary["capacity_after"],
            "swap_events": summary["swaps"],
        },
    )
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
    report.series_plot(
        rows,
        "t_min",
        {"p50": "p50_ms", "p99": "p99_ms"},
        f"latency per {window:g} s window",
        folder / "soak_latency.png",
        xlabel,
        "latency (ms)",
        marks,
        mark,
    )
    report.series_plot(
        rows,
        "t_min",
        {"server RSS (process tree)": "rss_mb"},
        "server memory",
        folder / "soak_rss.png",
        xlabel,
        "RSS (MB)",
        marks,
        mark,
    )
    errors = {f"status {s}": f"status_{s}" for s in statuses} or {"errors (non-200)": "errors"}
    report.series_plot(
        rows,
        "t_min",
        errors,
        f"errors per {window:g} s window ({sum(r['errors'] for r in rows)} of {total} requests)",
        folder / "soak_errors.png",
        xlabel,
        "requests answered non-200",
        marks,
        mark,
        style="bar",
    )


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
    from bedside.adapters import reporting as report
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.onnx.session import provider_for

    from .onnx import bench_onnx, variants_for

    provider, _ = provider_for(device)
    torch_device = "cuda" if provider.startswith("CUDA") else "cpu"
    b = load_backbone(backbone, device=torch_device)
    folder = results_folder(out)
    console.print(f"provider: {provider}; torch on {torch_device}")
    rows, summary = bench_onnx(
        b,
        int_list(batches),
        length,
        rounds,
        provider,
        progress=lambda r: console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}),
    )
    variants = variants_for(provider)
    series = (
        [f"merged_{v}_one_speedup" for v in variants]
        + [f"merged_{v}_mixed4_speedup" for v in variants]
        + ["shared_fp32_mixed4_speedup"]
    )
    columns = [
        "batch",
        "length",
        "torch_one_s",
        "torch_mixed4_s",
        *series,
        "torch_one_seq_per_s",
        *[f"merged_{v}_prob_diff" for v in variants],
        "shared_fp32_prob_diff",
    ]
    md = report.write(
        folder,
        "onnx",
        rows,
        columns,
        {"backbone": backbone, "device": device, "rounds": rounds, "length": length},
        plots=[
            lambda d: report.ratio_plot(
                rows,
                "batch",
                series,
                "length",
                f"ONNX Runtime ({provider}) throughput vs torch eager",
                d / "onnx.png",
                ylabel="speed-up (torch time / time)",
            )
        ],
        summary=summary,
    )
    show_report(md, folder)


@app.command("swap")
def swap(
    store: Path = typer.Option(..., help="adapter store; the task gets a second version (a copy) if it has one"),
    backbone: str = typer.Option("embedded"),
    task: str = typer.Option("mortality"),
    swaps: int = typer.Option(10),
    clients: int = typer.Option(4, help="closed-loop mixed load during the swaps"),
    backend: str = typer.Option("torch"),
    words: int = typer.Option(64, help="words per note at most"),
    mode: str = typer.Option(
        "stored",
        help="stored: activate stored versions in turn (load at activation) | "
        "uploaded: upload each version through the API (checked and staged), then activate",
    ),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Activation → first answer from the new version, and failed requests, under load."""
    from bedside.adapters import reporting as report

    from .swap import MODES, bench_swap

    if mode not in MODES:
        raise typer.BadParameter(" | ".join(MODES), param_hint="--mode")
    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    events, summary = bench_swap(
        store, backbone, task, swaps, clients, log_file=folder / "server.log", words=words, mode=mode, backend=backend
    )
    columns = (
        ["swap", "version", "status"]
        + (["upload_ms"] if mode == "uploaded" else [])
        + ["activate_call_ms", "first_answer_ms", "first_answer_after_call_ms"]
    )
    md = report.write(
        folder,
        "swap",
        events,
        columns,
        {
            "store": str(store),
            "backbone": backbone,
            "task": task,
            "clients": clients,
            "backend": backend,
            "resident_cap": 0,
            "mode": mode,
        },
        summary=summary,
        plots=[
            lambda d: report.series_plot(
                events,
                "swap",
                {"activation → first answer": "first_answer_ms", "activation call": "activate_call_ms"},
                f"{task} swaps ({mode}) under load ({clients} clients)",
                d / "swap.png",
                "swap",
                "ms",
            )
        ],
    )
    show_report(md, folder)


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

    folder = results_folder(out)
    rows, summary = bench_memory(load_backbone(backbone), adapters, rank, targets, lora=lora_path)
    for r in rows:
        r["full_copy_mb"] = summary["full_copy_mb"]
    md = report.write(
        folder,
        "memory",
        rows,
        ["adapters", "rss_mb", "added_mb"],
        {"backbone": backbone, "rank": rank, "targets": targets, "lora_path": lora_path},
        summary=summary,
        plots=[
            lambda d: report.series_plot(
                rows,
                "adapters",
                {"RSS added by adapters": "added_mb", "one full model copy": "full_copy_mb"},
                f"resident memory, LoRA r={rank} ({targets}, {lora_path})",
                d / "memory.png",
                "resident adapters",
                "MB",
            )
        ],
    )
    show_report(md, folder)

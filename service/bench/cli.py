"""``bedside bench``: benchmarks that print and save figures (ratios to a same-run baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .cli_common import console, int_list, ratio_report, results_folder, series_report, show_report
from .cli_notes import notes
from .cli_service import service
from .cli_shadow import shadow
from .cli_soak import soak

app = typer.Typer(
    help="Benchmarks: figures as JSON, Markdown and PNG, ratios to a same-run baseline.", no_args_is_help=True
)
app.command("service")(service)
app.command("soak")(soak)
app.command("shadow")(shadow)
app.command("notes")(notes)


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
    settings = {"backbone": backbone, "targets": targets, "rounds": rounds, "matmul_peak_flops": peak}
    ratio_report(folder, "model", rows, columns, settings, series, f"forward time vs bare base ({targets}, rank 8)")


@app.command("onnx")
def onnx(
    batches: str = typer.Option("1,8,32"),
    length: int = typer.Option(128, help="tokens per row"),
    rounds: int = typer.Option(5),
    backbone: str = typer.Option("embedded"),
    device: str = typer.Option("auto", help="auto | cpu | cuda: torch's device and the ONNX provider"),
    targets: str = typer.Option("all-linear", help="LoRA targets of the four adapters: all-linear | qkv"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """ONNX Runtime (merged fp32/int8 or fp16; shared fp32, and int8 on CPU) vs torch eager and
    the bare encoder, one adapter and four mixed; on CPU, resident memory for four tasks."""
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.onnx.session import provider_for

    from .model import TARGETS
    from .onnx import bench_onnx, shared_variants_for, variants_for

    if targets not in TARGETS:
        raise typer.BadParameter(f"targets: one of {', '.join(TARGETS)}")
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
        targets=targets,
    )
    variants, shared = variants_for(provider), shared_variants_for(provider)
    designs = [f"merged_{v}" for v in variants] + [f"shared_{v}" for v in shared]
    series = [f"{d}_{n}_vs_bare" for d in designs for n in ("one", "mixed4")]
    if torch_device == "cpu":
        series.append("torch_int8_mixed4_vs_bare")
    columns = [
        "batch",
        "length",
        "torch_bare_s",
        "torch_one_s",
        "torch_mixed4_s",
        *series,
        *[f"{d}_{n}_speedup" for d in designs for n in ("one", "mixed4")],
        *(["shared_int8_mixed4_vs_merged_int8_one"] if "int8" in shared else []),
        *[f"{d}_prob_diff" for d in designs],
    ]
    settings = {"backbone": backbone, "device": device, "rounds": rounds, "length": length, "targets": targets}
    title = f"ONNX Runtime ({provider}) throughput vs the bare torch fp32 encoder"
    ratio_report(folder, "onnx", rows, columns, settings, series, title, "speed-up (bare fp32 time / time)", summary)
    if "resident_mb" in summary:
        console.print({k: round(v, 2) for k, v in summary["resident_mb"].items()})


@app.command("gpu")
def gpu(
    dry_run: bool = typer.Option(False, "--dry-run", help="CPU, tiny shapes, seconds (what the test suite runs)"),
    out: Path = typer.Option(Path("runs/bench-gpu")),
    budget_s: float = typer.Option(420.0, help="stop starting new measurements after this many seconds"),
) -> None:
    """The GPU suite in one command (also ``python -m bedside.service.bench.gpu`` on a bare GPU machine)."""
    from .gpu import run

    run(dry_run, out, budget_s)


@app.command("swap")
def swap(
    store: Path = typer.Option(..., help="adapter store; the task gets a second version (a copy) if it has one"),
    backbone: str = typer.Option("embedded"),
    task: str = typer.Option("mortality"),
    swaps: int = typer.Option(10),
    clients: int = typer.Option(4, help="closed-loop mixed load during the swaps"),
    backend: str = typer.Option("torch"),
    onnx_design: str = typer.Option("merged", help="onnx: merged | shared (the one int8 base on CPU)"),
    words: int = typer.Option(64, help="words per note at most"),
    mode: str = typer.Option(
        "stored",
        help="stored: activate stored versions in turn (load at activation) | "
        "uploaded: upload each version through the API (checked and staged), then activate",
    ),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Activation → first answer from the new version, and failed requests, under load."""

    from .swap import MODES, bench_swap

    if mode not in MODES:
        raise typer.BadParameter(" | ".join(MODES), param_hint="--mode")
    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_settings: dict[str, Any] = {"onnx_design": onnx_design} if backend == "onnx" else {}
    events, summary = bench_swap(
        store,
        backbone,
        task,
        swaps,
        clients,
        log_file=folder / "server.log",
        words=words,
        mode=mode,
        backend=backend,
        **onnx_settings,
    )
    columns = (
        ["swap", "version", "status"]
        + (["upload_ms"] if mode == "uploaded" else [])
        + ["activate_call_ms", "first_answer_ms", "first_answer_after_call_ms"]
    )
    series_report(
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
        "swap",
        {"activation → first answer": "first_answer_ms", "activation call": "activate_call_ms"},
        f"{task} swaps ({mode}) under load ({clients} clients)",
        ("swap", "ms"),
        summary,
    )


@app.command("flood")
def flood(
    store: Path = typer.Option(..., help="adapter store with an active version of every preset task"),
    backbone: str = typer.Option("embedded"),
    flooders: int = typer.Option(8, help="clients posting over-long texts back to back"),
    seconds: float = typer.Option(20.0, help="measured seconds per phase (alone, flooded, alone)"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """/livez and a normal predict while clients flood the server with ~100 KB texts it must refuse."""
    from bedside.adapters import reporting as report

    from ..server import served
    from .flood import plot, run

    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    with served(folder / "server.log", store=store, backbone=backbone, device="cpu") as (url, _):
        rows, summary = run(url, seconds, flooders)
    raw = [row.pop("_raw") for row in rows]
    columns = ["phase", "livez_p50_ms", "livez_p99_ms", "predict_p50_ms", "predict_p99_ms", "predict_answered"]
    columns += ["flood_requests", "flood_p50_ms"]
    md = report.write(
        folder,
        "flood",
        rows,
        columns,
        {"store": str(store), "backbone": backbone, "flooders": flooders, "seconds": seconds},
        plots=[lambda d: plot(rows, raw, d / "flood.png")],
        summary=summary,
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
    from bedside.adapters.backbones import load_backbone

    from .memory import bench_memory

    folder = results_folder(out)
    rows, summary = bench_memory(load_backbone(backbone), adapters, rank, targets, lora=lora_path)
    for r in rows:
        r["full_copy_mb"] = summary["full_copy_mb"]
    series_report(
        folder,
        "memory",
        rows,
        ["adapters", "rss_mb", "added_mb"],
        {"backbone": backbone, "rank": rank, "targets": targets, "lora_path": lora_path},
        "adapters",
        {"RSS added by adapters": "added_mb", "one full model copy": "full_copy_mb"},
        f"resident memory, LoRA r={rank} ({targets}, {lora_path})",
        ("resident adapters", "MB"),
        summary,
    )

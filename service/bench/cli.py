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
    from adapters.backbones import load_backbone

    from . import report
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
    console.print(md.read_text())
    console.print(f"written to {folder}")

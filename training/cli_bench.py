"""``bedside bench train``: two ways to train, same model, rows and settings, in one run;
training examples/s and test metrics. ``--compare trainers``: bedside's trainer vs a plain
transformers ``Trainer`` + PEFT. ``--compare methods``: LoRA (the flags given) vs full
fine-tuning of the same model, both by bedside's trainer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from bedside.adapters.cli_settings import settings_flags

from .settings import TrainSettings

console = Console(stderr=True)


# A benchmark's defaults where they differ from a training run's: one epoch, on the CPU.
BENCH_DEFAULTS = {"epochs": 1, "device": "cpu"}


@settings_flags(TrainSettings, skip=("seed",))
def train_bench(
    task: str = typer.Option(..., help="a token task: ner or a task spec file (e.g. bc5cdr labels)"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    format: Optional[str] = typer.Option(None),
    backbone: str = typer.Option("embedded"),
    limit: Optional[int] = typer.Option(None, help="first N training examples only"),
    limit_eval: Optional[int] = typer.Option(None, help="first N val and test examples only"),
    seeds: str = typer.Option("0", help="comma-separated seeds; each seed trains both sides, figures are means"),
    compare: str = typer.Option("trainers", help="trainers (bedside vs transformers Trainer) | methods (LoRA vs full)"),
    full_lr: Optional[float] = typer.Option(None, help="methods: full fine-tuning's learning rate (default 3e-5)"),
    out: Optional[Path] = typer.Option(None, help="results folder (default: bench-results/<time>)"),
    *,
    overrides: dict,
) -> None:
    """Two sides trained once per seed; means, spreads and per-seed figures saved. Training
    flags as for ``bedside train`` (here one epoch on the CPU unless given)."""
    import statistics
    import tempfile

    from bedside.adapters import reporting
    from bedside.adapters.artifact import Method
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.metrics import primary_metric
    from bedside.adapters.tasks import resolve_task

    from .hf_baseline import BASELINE_KINDS, train_hf
    from .loaders import load_dataset
    from .trainer import train

    spec = resolve_task(task)
    if compare not in ("trainers", "methods"):
        console.print(f"[red]error:[/red] --compare takes trainers or methods, got {compare!r}")
        raise typer.Exit(2)
    if compare == "trainers" and spec.kind not in BASELINE_KINDS:
        console.print(
            f"[red]error:[/red] task {spec.name!r} is a {spec.kind.value} task; the Trainer baseline "
            "covers token tasks (NER), as the paper's code does"
        )
        raise typer.Exit(2)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        console.print(f"[red]error:[/red] --seeds takes comma-separated integers, got {seeds!r}")
        raise typer.Exit(2) from None
    if not seed_list:
        console.print("[red]error:[/red] --seeds is empty")
        raise typer.Exit(2)
    base = TrainSettings(**{**BENCH_DEFAULTS, **overrides})
    loaded = load_dataset(data, spec, format)
    splits = {"train": loaded["train"][:limit], "val": loaded["val"][:limit_eval], "test": loaded["test"][:limit_eval]}
    console.print(f"{spec.name}: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}")
    metric = f"test_{primary_metric(spec)}"

    def ours(settings: TrainSettings) -> dict:
        with tempfile.TemporaryDirectory(prefix="bedside-bench-train-") as tmp:
            r = train(spec, splits, settings, Path(tmp) / "run", backbone=load_backbone(backbone))
        low, high = r.intervals.get(primary_metric(spec)) or (None, None)
        return {
            "train_examples_per_s": r.cost["train_examples_per_s"],
            metric: r.metrics[metric],
            f"{metric}_low": low,  # the run's 95 % bootstrap interval of the test metric
            f"{metric}_high": high,
            "trainable_params": r.cost["trainable_params"],
            "eval_examples_per_s": r.cost["eval_examples_per_s"],
        }

    def full(settings: TrainSettings) -> dict:
        update = {"method": Method.full, "lr": full_lr if full_lr is not None else 3e-5}
        return ours(TrainSettings(**{**settings.model_dump(), **update}))

    def theirs(settings: TrainSettings) -> dict:
        r = train_hf(spec, splits, settings, load_backbone(backbone))
        return {
            "train_examples_per_s": r["train_examples_per_s"],
            metric: r["metrics"][metric],
            "trainable_params": r["trainable_params"],
            "eval_examples_per_s": r["eval_examples_per_s"],
        }

    if compare == "trainers":
        trainers = {"bedside": ours, "transformers Trainer + peft": theirs}
    else:
        trainers = {f"{base.method.value} (bedside trainer)": ours, "full fine-tuning (bedside trainer)": full}
    first, second = trainers
    rows = []
    for i, seed in enumerate(seed_list):
        settings = base.model_copy(update={"seed": seed})
        # Alternate who goes first, so a slow spell on a shared machine does not favour one side.
        for name in list(trainers) if i % 2 == 0 else list(trainers)[::-1]:
            console.print(f"[bold]seed {seed}: {name}[/bold]")
            rows.append({"trainer": name, "seed": seed, **trainers[name](settings)})
    means = []
    for name in trainers:
        mine = [r for r in rows if r["trainer"] == name]
        f1s = [r[metric] for r in mine]
        means.append(
            {
                "trainer": name,
                "seed": "mean",
                **{
                    k: statistics.fmean(r[k] for r in mine)
                    for k in ("train_examples_per_s", metric, "eval_examples_per_s")
                },
                f"{metric}_std": statistics.stdev(f1s) if len(f1s) > 1 else 0.0,
                "trainable_params": mine[0]["trainable_params"],
            }
        )
    paired = [
        100 * (a[metric] - b[metric])
        for a, b in zip([r for r in rows if r["trainer"] == first], [r for r in rows if r["trainer"] == second])
    ]
    speed = means[0]["train_examples_per_s"] / means[1]["train_examples_per_s"]
    summary = {
        "compare": compare,
        "first": first,
        "second": second,
        "metric": metric,
        "seeds": len(seed_list),
        "speed_ratio_first_over_second": speed,
        # Time per epoch, first over second: the inverse of the speed ratio (same data, same epochs).
        "epoch_time_ratio_first_over_second": 1 / speed,
        "points_first_minus_second": 100 * (means[0][metric] - means[1][metric]),
        "points_paired_differences": [round(d, 2) for d in paired],
    }
    folder = out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    columns = [
        "trainer",
        "seed",
        "train_examples_per_s",
        metric,
        f"{metric}_low",
        f"{metric}_high",
        f"{metric}_std",
        "trainable_params",
        "eval_examples_per_s",
    ]
    md = reporting.write(
        folder,
        "train",
        means + rows,
        columns,
        {
            "task": spec.name,
            "data": str(data),
            "backbone": backbone,
            "limit": limit,
            "limit_eval": limit_eval,
            "seeds": seed_list,
            **base.model_dump(mode="json", exclude={"seed"}),
        },
        summary=summary,
        plots=[
            lambda d: reporting.bar_plot(
                means,
                "trainer",
                {"training examples/s": "train_examples_per_s", f"{metric} ×100": metric},
                f"{first} vs {second} (same run, mean of {len(seed_list)} seed{'s' if len(seed_list) > 1 else ''})",
                d / "train.png",
                scale={metric: 100},
            )
        ],
    )
    console.print(md.read_text())
    console.print(f"written to {folder}")


def step_bench(
    task: str = typer.Option(..., help="a preset task or a task spec file"),
    data: Path = typer.Option(..., exists=True, help="data file or folder (its train split is used)"),
    variants: str = typer.Option(
        ",torchdropout,peft,peft+dropout+heap+torchdropout,heap,full,full+heap",
        help="comma-separated; empty: the default recipe; peft, dropout, torchdropout, heap, mmapN, thp, full "
        "change it (joined by +)",
    ),
    steps: int = typer.Option(20, min=1, help="optimiser steps per variant"),
    batch_size: int = typer.Option(32, min=1),
    backbone: str = typer.Option("embedded"),
    out: Optional[Path] = typer.Option(None, help="results folder (default: bench-results/<time>)"),
    interleave: bool = typer.Option(
        False,
        help="all variants in one process, taking turns step by step: time ratios the machine's drift "
        "does not move, with 95 %% intervals (memory is then the process's, not each variant's)",
    ),
) -> None:
    """Where a training step's time and memory go: each variant in a fresh process, same batches."""
    from .step_profile import check_variants, run_variants, write

    names = [v.strip() for v in variants.split(",")]
    how = "taking turns in one process" if interleave else "one process per variant"
    console.print(f"{len(names)} variants, {steps} steps of {batch_size} each, {how}")
    try:
        check_variants(names)
        results = run_variants(task, str(data), names, steps, batch_size, backbone, interleave)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    folder = out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    md = write(results, folder, {"task": task, "data": str(data), "batch_size": batch_size, "steps": steps})
    console.print(md.read_text())
    console.print(f"written to {folder}")

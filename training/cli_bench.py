"""``bedside bench train``: bedside's trainer vs a plain transformers ``Trainer`` + PEFT,
same model, rows and settings, in one run; training examples/s and test metrics."""

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
    out: Optional[Path] = typer.Option(None, help="results folder (default: bench-results/<time>)"),
    *,
    overrides: dict,
) -> None:
    """Same LoRA run with each trainer, once per seed; means, spreads and per-seed figures saved.
    Training flags as for ``bedside train`` (here one epoch on the CPU unless given)."""
    import statistics
    import tempfile

    from bedside.adapters import reporting
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.tasks import resolve_task

    from .hf_baseline import BASELINE_KINDS, train_hf
    from .loaders import load_dataset
    from .trainer import train

    spec = resolve_task(task)
    if spec.kind not in BASELINE_KINDS:
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
    metric = "test_entity_f1"

    def ours(settings: TrainSettings) -> dict:
        with tempfile.TemporaryDirectory(prefix="bedside-bench-train-") as tmp:
            r = train(spec, splits, settings, Path(tmp) / "run", backbone=load_backbone(backbone))
        return {
            "train_examples_per_s": r.cost["train_examples_per_s"],
            metric: r.metrics[metric],
            "trainable_params": r.cost["trainable_params"],
            "eval_examples_per_s": r.cost["eval_examples_per_s"],
        }

    def theirs(settings: TrainSettings) -> dict:
        r = train_hf(spec, splits, settings, load_backbone(backbone))
        return {
            "train_examples_per_s": r["train_examples_per_s"],
            metric: r["metrics"][metric],
            "trainable_params": r["trainable_params"],
            "eval_examples_per_s": r["eval_examples_per_s"],
        }

    trainers = {"bedside": ours, "transformers Trainer + peft": theirs}
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
                "test_entity_f1_std": statistics.stdev(f1s) if len(f1s) > 1 else 0.0,
                "trainable_params": mine[0]["trainable_params"],
            }
        )
    paired = [
        100 * (a[metric] - b[metric])
        for a, b in zip([r for r in rows if r["trainer"] == "bedside"], [r for r in rows if r["trainer"] != "bedside"])
    ]
    summary = {
        "seeds": len(seed_list),
        "speed_ratio_bedside_over_trainer": means[0]["train_examples_per_s"] / means[1]["train_examples_per_s"],
        "f1_points_bedside_minus_trainer": 100 * (means[0][metric] - means[1][metric]),
        "f1_points_paired_differences": [round(d, 2) for d in paired],
    }
    folder = out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    columns = [
        "trainer",
        "seed",
        "train_examples_per_s",
        metric,
        "test_entity_f1_std",
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
                {"training examples/s": "train_examples_per_s", "test entity F1 ×100": metric},
                f"bedside trainer vs transformers Trainer (same run, mean of "
                f"{len(seed_list)} seed{'s' if len(seed_list) > 1 else ''})",
                d / "train.png",
                scale={metric: 100},
            )
        ],
    )
    console.print(md.read_text())
    console.print(f"written to {folder}")

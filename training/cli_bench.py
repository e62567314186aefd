"""``bedside bench train``: bedside's trainer vs a plain transformers ``Trainer`` + PEFT,
same model, rows and settings, in one run; training examples/s and test metrics."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def train_bench(
    task: str = typer.Option(..., help="a token task: ner or a task spec file (e.g. bc5cdr labels)"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    format: Optional[str] = typer.Option(None),
    backbone: str = typer.Option("embedded"),
    limit: Optional[int] = typer.Option(None, help="first N training examples only"),
    limit_eval: Optional[int] = typer.Option(None, help="first N val and test examples only"),
    rank: int = typer.Option(8),
    alpha: float = typer.Option(8),
    target_modules: str = typer.Option("query,key,value"),
    lr: float = typer.Option(3e-4),
    epochs: int = typer.Option(1),
    batch_size: int = typer.Option(32),
    max_length: int = typer.Option(128),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="results folder (default: bench-results/<time>)"),
) -> None:
    """Same LoRA run twice: bedside's trainer, then transformers' Trainer; figures saved."""
    import tempfile

    from adapters import reporting
    from adapters.backbones import load_backbone
    from adapters.tasks import resolve_task

    from .hf_baseline import train_hf
    from .loaders import load_dataset
    from .settings import TrainSettings
    from .trainer import train

    from adapters.tasks import TaskKind

    spec = resolve_task(task)
    if spec.kind is not TaskKind.token:
        console.print(f"[red]error:[/red] task {spec.name!r} is a {spec.kind.value} task; the Trainer baseline "
                      "covers token tasks (NER), as the paper's code does")
        raise typer.Exit(2)
    settings = TrainSettings(rank=rank, alpha=alpha, target_modules=tuple(t.strip() for t in target_modules.split(",")),
                             lr=lr, epochs=epochs, batch_size=batch_size, max_length=max_length, seed=seed,
                             device="cpu")
    splits = load_dataset(data, spec, format)
    splits = {"train": splits["train"][:limit], "val": splits["val"][:limit_eval], "test": splits["test"][:limit_eval]}
    console.print(f"{spec.name}: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}")
    console.print("[bold]bedside trainer[/bold]")
    with tempfile.TemporaryDirectory(prefix="bedside-bench-train-") as tmp:
        ours = train(spec, splits, settings, Path(tmp) / "run", backbone=load_backbone(backbone))
    console.print("[bold]transformers Trainer + peft[/bold]")
    theirs = train_hf(spec, splits, settings, load_backbone(backbone))
    metric = "test_entity_f1"
    rows = [{"trainer": "bedside", "train_examples_per_s": ours.cost["train_examples_per_s"],
             metric: ours.metrics[metric], "trainable_params": ours.cost["trainable_params"],
             "eval_examples_per_s": ours.cost["eval_examples_per_s"]},
            {"trainer": "transformers Trainer + peft", "train_examples_per_s": theirs["train_examples_per_s"],
             metric: theirs["metrics"][metric], "trainable_params": theirs["trainable_params"],
             "eval_examples_per_s": theirs["eval_examples_per_s"]}]
    summary = {"speed_ratio_bedside_over_trainer": rows[0]["train_examples_per_s"] / rows[1]["train_examples_per_s"],
               "f1_points_bedside_minus_trainer": 100 * (rows[0][metric] - rows[1][metric])}
    folder = out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    md = reporting.write(folder, "train", rows, list(rows[0]), {
        "task": spec.name, "data": str(data), "backbone": backbone, "limit": limit, "limit_eval": limit_eval,
        **settings.model_dump(mode="json")}, summary=summary,
        plots=[lambda d: reporting.bar_plot(rows, "trainer", {"training examples/s": "train_examples_per_s",
                                                              "test entity F1 ×100": metric},
                                            "bedside trainer vs transformers Trainer (same run)", d / "train.png",
                                            scale={metric: 100})])
    console.print(md.read_text())
    console.print(f"written to {folder}")

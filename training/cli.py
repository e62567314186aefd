"""``bedside train`` and ``bedside evaluate``."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from adapters.artifact import ArtifactError, Method
from adapters.backbones import BackboneError
from adapters.tasks import resolve_task

console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _print_metrics(title: str, metrics: dict, cost: dict | None = None) -> None:
    table = Table("metric", "value", title=title)
    for key, value in metrics.items():
        table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    for key, value in (cost or {}).items():
        table.add_row(key, str(value))
    Console().print(table)


def train(
    task: str = typer.Option(..., help="mortality, length_of_stay, ner, relations, or a task spec file"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    out: Path = typer.Option(..., help="run folder: artifact/ (the adapter), metrics.json, log.csv"),
    format: Optional[str] = typer.Option(None, help="mimic-csv | i2b2 | conll | re-tsv | csv | jsonl (inferred)"),
    method: Method = typer.Option(Method.lora, help="lora | ia3 | full | prompt | prefix"),
    backbone: str = typer.Option("embedded", help="embedded, embedded:layers=K, a folder or a hub id"),
    rank: int = typer.Option(8, help="LoRA rank"),
    alpha: float = typer.Option(8, help="LoRA alpha"),
    dropout: float = typer.Option(0.1, help="LoRA dropout"),
    target_modules: str = typer.Option("query,key,value", help="comma-separated module names"),
    lr: Optional[float] = typer.Option(None, help="learning rate (3e-4 PEFT, 3e-5 full)"),
    epochs: int = typer.Option(5),
    batch_size: int = typer.Option(32),
    max_length: int = typer.Option(128, help="token limit per input"),
    seed: int = typer.Option(0),
    few_shot: Optional[int] = typer.Option(None, help="examples per class"),
    time_budget: Optional[float] = typer.Option(None, help="seconds of training at most"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    precision: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (GPU)"),
    label_map: Optional[Path] = typer.Option(None, help="CSV/JSON mapping raw labels to task labels"),
    name: Optional[str] = typer.Option(None, help="adapter name in the manifest"),
) -> None:
    """Fine-tune an adapter and write its artifact (plus metrics.json and log.csv)."""
    from pydantic import ValidationError

    from .loaders import DataError, load_dataset
    from .settings import TrainSettings
    from .trainer import train as run

    try:
        spec = resolve_task(task)
        settings = TrainSettings(method=method, rank=rank, alpha=alpha, dropout=dropout,
                                 target_modules=tuple(t.strip() for t in target_modules.split(",") if t.strip()),
                                 lr=lr, epochs=epochs, batch_size=batch_size, max_length=max_length, seed=seed,
                                 few_shot=few_shot, time_budget=time_budget, device=device, precision=precision)
        options = {"label_map": str(label_map)} if label_map else {}
        with warnings.catch_warnings(record=True):  # notes are printed below instead
            warnings.simplefilter("always")
            splits = load_dataset(data, spec, format, **options)
        for note in getattr(splits, "notes", []):
            console.print(f"[yellow]note:[/yellow] {note}")
        console.print(f"training {settings.method.value} for {spec.name!r}: "
                      + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
        result = run(spec, splits, settings, out, backbone=backbone, name=name)
    except (DataError, ValidationError, ValueError, BackboneError, ArtifactError) as exc:
        _fail(str(exc))
    _print_metrics(f"{spec.name} · {settings.method.value} · test", result.metrics, result.cost)
    console.print(f"artifact written to {result.artifact}")


def evaluate(
    adapter: Path = typer.Option(..., exists=True, file_okay=False, help="artifact directory"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    split: str = typer.Option("test", help="train | val | test"),
    format: Optional[str] = typer.Option(None),
    backbone: Optional[str] = typer.Option(None, help="override the base named in the manifest"),
    batch_size: int = typer.Option(64),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the metrics here"),
) -> None:
    """Re-score an adapter artifact on a split of any data set."""
    from adapters.artifact import build_model, load_artifact
    from adapters.backbones import load_backbone

    from .evaluation import evaluate as score
    from .loaders import DataError, load_dataset

    try:
        artifact = load_artifact(adapter)
        m = artifact.manifest
        model = build_model(artifact, load_backbone(backbone or m.base.name), name="eval")
        splits = load_dataset(data, m.task, format)
        if split not in splits:
            _fail(f"no {split!r} split in {data}; found {list(splits)}")
        result = score(model, "eval", splits[split], batch_size)
    except (DataError, ValueError, BackboneError, ArtifactError) as exc:
        _fail(str(exc))
    _print_metrics(f"{m.name} on {data} [{split}]", result.metrics,
                   {"examples": result.n, "examples_per_s": round(result.throughput, 1)})
    if json_out:
        json_out.write_text(json.dumps({"metrics": result.metrics, "n": result.n}, indent=2) + "\n")

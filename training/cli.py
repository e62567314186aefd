"""``bedside train`` and ``bedside evaluate``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bedside.adapters.artifact import ArtifactError
from bedside.adapters.backbones import BackboneError
from bedside.adapters.cli_settings import settings_flags
from bedside.adapters.tasks import resolve_task

from .settings import TrainSettings

console = Console(stderr=True)
# The same flag wherever labelled data is read (train, evaluate, adapters compare).
LABEL_MAP = typer.Option(None, help="CSV/JSON mapping raw labels to task labels")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _print_metrics(title: str, metrics: dict, cost: dict | None = None, intervals: dict | None = None) -> None:
    table = Table("metric", "value", "95 % interval (bootstrap)", title=title)
    for key, value in metrics.items():
        low_high = (intervals or {}).get(key)
        table.add_row(
            key,
            "n/a" if value is None else f"{value:.4f}",
            f"{low_high[0]:.4f} – {low_high[1]:.4f}" if low_high else "",
        )
    for key, value in (cost or {}).items():
        table.add_row(key, str(value), "")
    Console().print(table)


def _print_calibration(title: str, task, result, readout) -> dict:
    """Sequence and pair tasks: NLL, Brier and ECE of the split, raw softmax and as served."""
    from bedside.adapters.metrics import label_ids
    from bedside.adapters.readout import IDENTITY

    from .calibration import describe, ece_floor, scores

    probs = result.scores(IDENTITY)
    if probs is None:
        return {}
    labels = label_ids(task, result.gold)
    served = result.scores(readout)
    report = {"before": scores(probs, labels), "after": scores(served, labels), "ece_floor": ece_floor(served)}
    floor = report["ece_floor"]
    table = Table(
        "",
        "NLL",
        "Brier",
        "ECE",
        title=f"{title} · calibration ({describe(readout)})",
        caption=f"ECE of a perfectly calibrated model on {len(labels)} examples, from sampling alone: "
        f"{floor['mean']:.4f} on average, {floor['p95']:.4f} at the 95th percentile",
    )
    for name, row in (("softmax", report["before"]), ("served (calibrated)", report["after"])):
        table.add_row(name, *(f"{row[k]:.4f}" for k in ("nll", "brier", "ece")))
    Console().print(table)
    return report


@settings_flags(TrainSettings)
def train(
    task: str = typer.Option(..., help="mortality, length_of_stay, ner, relations, or a task spec file"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    out: Path = typer.Option(..., help="run folder: artifact/ (the adapter), metrics.json, log.csv"),
    format: Optional[str] = typer.Option(None, help="mimic-csv | i2b2 | conll | re-tsv | csv | jsonl (inferred)"),
    backbone: str = typer.Option("embedded", help="embedded, embedded:layers=K, a folder or a hub id"),
    label_map: Optional[Path] = LABEL_MAP,
    name: Optional[str] = typer.Option(None, help="adapter name in the manifest"),
    *,
    overrides: dict,
) -> None:
    """Fine-tune an adapter and write its artifact (plus metrics.json and log.csv).

    Every training setting is a flag; a recipe (--recipe) fills what is not given."""
    from pydantic import ValidationError

    from .loaders import DataError, load_dataset
    from .trainer import train as run

    try:
        spec = resolve_task(task)
        settings = TrainSettings(**overrides)
        with warnings.catch_warnings(record=True):  # notes are printed below instead
            warnings.simplefilter("always")
            splits = load_dataset(data, spec, format, label_map=label_map)
        for note in getattr(splits, "notes", []):
            console.print(f"[yellow]note:[/yellow] {note}")
        console.print(
            f"training {settings.method.value} for {spec.name!r}: "
            + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        )
        result = run(spec, splits, settings, out, backbone=backbone, name=name)
    except (DataError, ValidationError, ValueError, BackboneError, ArtifactError) as exc:
        _fail(str(exc))
    intervals = {f"test_{k}": v for k, v in result.intervals.items()}  # named as the test metrics are
    _print_metrics(f"{spec.name} · {settings.method.value} · test", result.metrics, result.cost, intervals)
    console.print(f"artifact written to {result.artifact}")


def evaluate(
    adapter: Path = typer.Option(..., exists=True, file_okay=False, help="artifact directory"),
    data: Path = typer.Option(..., exists=True, help="data file or folder"),
    split: str = typer.Option("test", help="train | val | test"),
    format: Optional[str] = typer.Option(None),
    label_map: Optional[Path] = LABEL_MAP,
    backbone: Optional[str] = typer.Option(None, help="override the base named in the manifest"),
    batch_size: int = typer.Option(64),
    backend: str = typer.Option(
        "torch", help="torch | onnx (the exported graph, as the service's onnx backend runs it; compared with torch)"
    ),
    variant: str = typer.Option("auto", help="onnx: auto (int8 on CPU, fp16 on CUDA) | fp32 | int8 | fp16"),
    design: str = typer.Option(
        "merged", help="onnx: merged (LoRA folded into a graph of its own) | shared (the one base, LoRA as inputs)"
    ),
    device: str = typer.Option("auto", help="onnx: auto | cpu | cuda | cuda:N"),
    onnx_cache: Optional[Path] = typer.Option(None, help="onnx: export cache (default: ~/.cache/bedside/onnx)"),
    bootstrap: int = typer.Option(1000, min=0, help="resamples for 95 % intervals (0: none)"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the metrics here"),
) -> None:
    """Re-score an adapter artifact on a split of any data set (torch, or its ONNX export)."""
    from bedside.adapters.artifact import build_model, load_artifact
    from bedside.adapters.backbones import load_backbone

    from .evaluation import agreement
    from .evaluation import evaluate as score
    from .loaders import DataError, load_dataset

    if backend not in ("torch", "onnx"):
        _fail("backend must be torch or onnx")
    if design not in ("merged", "shared"):
        _fail("design must be merged or shared")
    try:
        artifact = load_artifact(adapter)
        m = artifact.manifest
        splits = load_dataset(data, m.task, format, label_map=label_map)
        if split not in splits:
            _fail(f"no {split!r} split in {data}; found {list(splits)}")
        examples = splits[split]
        out: dict = {}
        if backend == "onnx":
            onnx_model, label = _onnx_model(
                adapter, artifact, load_backbone(backbone or m.base.name), variant, design, device, onnx_cache
            )
            onnx_result = score(onnx_model, "eval", examples, batch_size)
        model = build_model(artifact, load_backbone(backbone or m.base.name), name="eval")
        result = score(model, "eval", examples, batch_size, bootstrap=bootstrap, seed=seed)
    except (DataError, ValueError, BackboneError, ArtifactError, RuntimeError) as exc:
        _fail(str(exc))
    title = f"{m.name} on {data} [{split}]"
    out["torch"] = {
        "metrics": result.metrics,
        "intervals": result.intervals,
        "n": result.n,
        "examples_per_s": result.throughput,
    }
    _print_metrics(
        f"{title} · torch",
        result.metrics,
        {"examples": result.n, "examples_per_s": round(result.throughput, 1)},
        result.intervals,
    )
    out["torch"]["calibration"] = _print_calibration(title, m.task, result, m.readout)
    if backend == "onnx":
        share = agreement(onnx_result.predictions, result.predictions)
        out["onnx"] = {
            "backend": label,
            "metrics": onnx_result.metrics,
            "n": onnx_result.n,
            "examples_per_s": onnx_result.throughput,
            "label_agreement_with_torch": share,
            "metric_delta": {
                k: (v - result.metrics[k]) if v is not None and result.metrics.get(k) is not None else None
                for k, v in onnx_result.metrics.items()
            },
        }
        _print_metrics(
            f"{m.name} on {data} [{split}] · {label}",
            onnx_result.metrics,
            {
                "examples": onnx_result.n,
                "examples_per_s": round(onnx_result.throughput, 1),
                "label agreement with torch": f"{share:.4%}",
            },
        )
    if json_out:
        json_out.write_text(json.dumps({**out["torch"], **out}, indent=2) + "\n")


def _onnx_model(adapter: Path, artifact, base, variant: str, design: str, device: str, cache: Path | None):
    """The artifact through ONNX Runtime on the checked provider: its merged export, or the
    shared base graph (every BERT Linear a LoRA input) with its weights attached (both cached)."""
    from bedside.adapters.onnx.export import default_cache_dir, export_artifact
    from bedside.adapters.onnx.session import OnnxModel, provider_for, variant_for
    from bedside.adapters.onnx.shared import (
        BERT_LINEARS,
        SHARED_VARIANTS,
        SharedOnnxModel,
        export_shared,
        linear_targets,
    )

    m = artifact.manifest
    provider, options = provider_for(device)
    variant = variant_for(variant, provider)
    cache = cache or default_cache_dir()
    if design == "shared":
        if variant not in SHARED_VARIANTS:
            raise ValueError(f"the shared design runs {' or '.join(SHARED_VARIANTS)}, not {variant}")
        targets = linear_targets(base, BERT_LINEARS)
        graph, meta = export_shared(base, targets, cache, variant=variant)
        shared = SharedOnnxModel(base, graph, meta, provider, provider_options=options)
        shared.add("eval", artifact)
        return shared, f"onnx:shared:{variant}:{provider}"
    exported = export_artifact(adapter, base, cache, variant)
    model = OnnxModel(base.tokenizer, provider, provider_options=options)
    model.add("eval", exported, m.task, m.max_length, m.long_input, m.readout)
    return model, f"onnx:merged:{variant}:{provider}"

"""``bedside adapters compare TASK A B --data FILE``: two stored versions on the same labelled
examples, their metric differences with paired bootstrap intervals, how often they agree, and
(``--url``) the live agreement a running service's shadow of the same pair reports."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli import LABEL_MAP

console = Console()


def compare(
    task: str = typer.Argument(..., help="the task both versions serve"),
    a: str = typer.Argument(..., help="the reference version (usually the active one)"),
    b: str = typer.Argument(..., help="the candidate version"),
    data: Path = typer.Option(..., exists=True, help="labelled data file or folder"),
    split: str = typer.Option("test", help="train | val | test"),
    format: Optional[str] = typer.Option(None),
    label_map: Optional[Path] = LABEL_MAP,
    store: Optional[Path] = typer.Option(
        None, "--store", help="store folder (default: $BEDSIDE_STORE, else ~/.local/share/bedside/store)"
    ),
    backbone: Optional[str] = typer.Option(None, help="override the base named in the manifests"),
    batch_size: int = typer.Option(64),
    bootstrap: int = typer.Option(1000, min=1, help="paired resamples for the 95 % intervals"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    url: Optional[str] = typer.Option(None, help="a running service: print its live shadow agreement beside"),
    token_env: str = typer.Option("BEDSIDE_ADMIN_TOKEN", help="environment variable holding the admin token"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the comparison here"),
) -> None:
    """Score two stored versions of a task on the same labelled data: B − A per metric with paired
    bootstrap intervals (an interval that excludes 0 is a difference the data supports)."""
    from bedside.adapters.artifact import ArtifactError, build_model, load_artifact
    from bedside.adapters.backbones import BackboneError, load_backbone
    from bedside.adapters.registry import Registry, RegistryError, resolve_store

    from .bootstrap import paired_differences
    from .evaluation import agreement, evaluate
    from .loaders import DataError, load_dataset

    try:
        registry = Registry(resolve_store(store))
        folders = {v: registry.version_path(task, v) for v in (a, b)}
        for v in (a, b):
            registry.show(task, v)  # NotFound for a version that is not stored
        artifacts = {v: load_artifact(folder) for v, folder in folders.items()}
        spec = artifacts[a].manifest.task
        if artifacts[b].manifest.task.labels != spec.labels:
            _fail(f"{a} and {b} answer different labels: they cannot be compared")
        splits = load_dataset(data, spec, format, label_map=label_map)
        if split not in splits:
            _fail(f"no {split!r} split in {data}; found {list(splits)}")
        examples = splits[split]
        results, scored = {}, {}
        for v, artifact in artifacts.items():
            # A base of its own per version: a LoRA version wraps the encoder's layers in place, and
            # a full fine-tuning version overwrites its weights; either would change the other's.
            base = load_backbone(backbone or artifacts[a].manifest.base.name)
            model = build_model(artifact, base, name=v)
            results[v] = evaluate(model, v, examples, batch_size)
            scored[v] = results[v].scores(model.slots[v].readout)
    except RegistryError as exc:
        _fail(f"[{exc.code}] {exc.message}")
    except (DataError, ValueError, BackboneError, ArtifactError, RuntimeError) as exc:
        _fail(str(exc))
    ra, rb = results[a], results[b]
    diffs = paired_differences(spec, ra.gold, ra.predictions, rb.predictions, scored[a], scored[b], bootstrap, seed)
    agree = agreement(rb.predictions, ra.predictions)
    table = Table("metric", a, b, f"{b} − {a}", "95 % paired interval", title=f"{task}: {b} vs {a} on {data} [{split}]")
    for key, (diff, low, high) in diffs.items():
        table.add_row(
            key, _fmt(ra.metrics.get(key)), _fmt(rb.metrics.get(key)), f"{diff:+.4f}", f"{low:+.4f} – {high:+.4f}"
        )
    table.add_row("examples", str(ra.n), str(rb.n), "", "")
    table.add_row("label agreement (offline)", "", "", f"{agree:.4f}", "")
    console.print(table)
    out = {
        "task": task,
        "a": a,
        "b": b,
        "examples": ra.n,
        "metrics": {a: ra.metrics, b: rb.metrics},
        "differences": {k: {"b_minus_a": d, "low": lo, "high": hi} for k, (d, lo, hi) in diffs.items()},
        "offline_agreement": agree,
    }
    if url:
        live = _live_pairs(url, task, os.environ.get(token_env))
        out["live"] = live
        for pair in live:
            if (pair["active"], pair["candidate"]) == (a, b):
                console.print(
                    f"live shadow {a} vs {b}: {pair['requests'].get('compared', 0)} requests compared, "
                    f"label agreement {_fmt(pair['label_agreement'])}, "
                    f"entity agreement F1 {_fmt(pair['entity_agreement_f1'])}"
                )
                break
        else:
            console.print(f"live: the service has compared no requests of {a} vs {b}")
    if json_out:
        json_out.write_text(json.dumps(out, indent=2, default=float))


def _live_pairs(url: str, task: str, token: str | None) -> list[dict]:
    """The service's shadow report (training never imports the service: a plain HTTP GET)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/admin/adapters/{task}/shadow", headers={"Authorization": f"Bearer {token or ''}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["pairs"]
    except (urllib.error.URLError, ValueError, KeyError) as exc:
        _fail(f"cannot read the live shadow report from {url}: {exc}")
    return []


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)

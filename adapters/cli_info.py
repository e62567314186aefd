"""``bedside info``: what base model and tasks this installation knows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Inspect backbones, tasks and adapter artifacts.", no_args_is_help=True)
console = Console()


@app.command("tasks")
def tasks(spec: Optional[Path] = typer.Option(None, help="also validate a user task spec (.yaml/.json)")) -> None:
    """List the preset tasks (and a user task spec, if given)."""
    from .tasks import PRESETS, load_task_spec

    table = Table("task", "kind", "labels")
    specs = list(PRESETS.values()) + ([load_task_spec(spec)] if spec else [])
    for t in specs:
        table.add_row(t.name, t.kind.value, ", ".join(t.labels))
    console.print(table)


@app.command("backbone")
def backbone(spec: str = typer.Argument("embedded", help="embedded, embedded:layers=K, a folder or a hub id")) -> None:
    """Load a backbone and print its size and fingerprint."""
    from .backbones import load_backbone

    b = load_backbone(spec)
    console.print(
        f"name:        {b.name}\nparameters:  {b.num_parameters():,}\n"
        f"hidden size: {b.hidden_size}\nfingerprint: {b.fingerprint}"
    )


@app.command("artifact")
def artifact(path: Path = typer.Argument(..., exists=True, file_okay=False)) -> None:
    """Validate an adapter artifact directory and print its manifest."""
    from .artifact import ArtifactError, load_artifact

    try:
        art = load_artifact(path)
    except ArtifactError as exc:
        console.print(f"[red]invalid artifact:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print_json(art.manifest.model_dump_json())

"""``bedside evaluate-notes``: a token adapter on whole documents vs sentence by sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def evaluate_notes(
    adapter: Path = typer.Option(..., exists=True, file_okay=False, help="artifact directory of a token task"),
    docs: Path = typer.Option(..., exists=True, dir_okay=False, help="documents (JSON lines: bedside data documents)"),
    backbone: Optional[str] = typer.Option(None, help="override the base named in the manifest"),
    max_length: Optional[int] = typer.Option(None, help="window length (default: the adapter's)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the scores here"),
) -> None:
    """Entity F1 on whole documents read in windows (as the service reads a note) vs each sentence alone."""
    from bedside.adapters.artifact import ArtifactError, build_model, load_artifact
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.predict import Predictor

    from .documents import read_documents
    from .note_eval import compare

    try:
        artifact = load_artifact(adapter)
        if artifact.manifest.task.kind != "token":
            raise ValueError(f"{artifact.manifest.task.name} is a {artifact.manifest.task.kind} task, not a token task")
        model = build_model(artifact, load_backbone(backbone or artifact.manifest.base.name), name="eval").eval()
        documents = read_documents(docs)
        if not documents:
            raise ValueError(f"no documents in {docs}")
    except (ArtifactError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    result = compare(Predictor(model, "eval", max_length), documents)
    table = Table("reading", "precision", "recall", "F1", title=f"{artifact.manifest.name} on {docs.name}")
    for name in ("whole_document", "sentence_by_sentence"):
        s = result[name]
        table.add_row(name.replace("_", " "), f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}")
    console.print(table)
    w = result["windows_per_document"]
    console.print(
        f"{result['documents']} documents, {result['sentences']} sentences, {result['entities']} entities; "
        f"windows per document {w['min']}-{w['max']} (mean {w['mean']:.1f}); "
        f"whole minus sentences: {result['f1_points_whole_minus_sentences']:+.2f} F1 points"
    )
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")

"""``bedside export onnx``: an adapter artifact as an ONNX graph (LoRA merged, head included)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Export adapters for other runtimes.", no_args_is_help=True)
console = Console()


@app.command("onnx")
def onnx(
    adapter: Path = typer.Option(..., "--adapter", exists=True, file_okay=False, help="adapter artifact folder"),
    backbone: str = typer.Option("embedded", help="the base the adapter was trained on"),
    out: Optional[Path] = typer.Option(
        None, help="cache folder (default: $BEDSIDE_ONNX_CACHE or ~/.cache/bedside/onnx)"
    ),
    int8: bool = typer.Option(False, "--int8", help="also write the dynamically quantised int8 graph (CPU)"),
    provider: Optional[str] = typer.Option(
        None, help="execution provider to check the graph on (default: CUDA when available, else CPU)"
    ),
    rebuild: bool = typer.Option(False, help="export again even when the cache has the files"),
) -> None:
    """Export (or reuse from the cache) and check that the graph opens on the provider."""
    from bedside.adapters.artifact import ArtifactError
    from bedside.adapters.backbones import BackboneError, load_backbone

    from .export import ExportError, default_cache_dir, export_artifact
    from .session import ProviderError, open_session

    try:
        base = load_backbone(backbone)
        cache = out or default_cache_dir()
        variants = ["fp32", "int8"] if int8 else ["fp32"]
        for variant in variants:
            exported = export_artifact(adapter, base, cache, variant, rebuild=rebuild and variant == variants[0])
            session = open_session(exported.model_path, provider)
            state = "exported" if exported.built else "cached"
            console.print(f"[bold]{variant}[/bold] ({state}) {exported.folder}")
            for name, size in exported.files().items():
                console.print(f"  {name:<12} {size / 1e6:10.3f} MB")
            fused = {k: v for k, v in exported.fused_ops.items() if v}
            console.print(f"  fused ops: {fused or 'none'}")
            console.print(f"  provider: {session.get_providers()[0]}")
    except (ArtifactError, BackboneError, ExportError, ProviderError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None

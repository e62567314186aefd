"""``bedside sweep``, ``bedside report`` and ``bedside pretrain``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def sweep(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="study file (YAML)"),
    out: Optional[Path] = typer.Option(
        None, help="results folder (default: the file's `out`, relative to the working directory)"
    ),
    index: Optional[int] = typer.Option(None, help="run only run N (a Kubernetes Indexed Job's index)"),
    workers: int = typer.Option(1, help="parallel local processes (each run in its own)"),
    retry_failed: bool = typer.Option(False, help="also redo runs that failed before"),
    count: bool = typer.Option(False, "--count", help="print the number of runs and exit"),
    list_runs: bool = typer.Option(False, "--list", help="print index, run id and state of every run, and exit"),
    progress: bool = typer.Option(True, help="progress bars"),
) -> None:
    """Run a study's grid (resumable: finished runs are skipped); results merge into results.csv."""
    from pydantic import ValidationError

    from .config import load_config
    from .plan import expand
    from .results import collect, write_csv
    from .runner import execute, pending, read_result, run_parallel

    threads = os.environ.get("BEDSIDE_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        study = load_config(config)
        runs = expand(study)
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]error:[/red] {config}: {exc}")
        raise typer.Exit(2) from None
    folder = out or Path(study.out)
    if count:
        print(len(runs))
        return
    if list_runs:
        for i, run in enumerate(runs):
            result = read_result(folder, run)
            print(f"{i}\t{run.run_id}\t{result.get('status') if result else 'pending'}")
        return
    if index is not None:
        if not 0 <= index < len(runs):
            console.print(f"[red]error:[/red] index {index} is outside 0..{len(runs) - 1}")
            raise typer.Exit(2)
        result = execute(study, config, runs[index], folder, progress)
        console.print(f"run {index} {runs[index].run_id}: {result['status']}")
        raise typer.Exit(0 if result["status"] == "ok" else 1)
    todo = pending(study, runs, folder, retry_failed)
    console.print(
        f"{study.name}: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to run -> {folder}"
    )
    if workers > 1:
        run_parallel(
            config,
            todo,
            workers,
            folder,
            on_done=lambda i, rc: console.print(f"run {i} {runs[i].run_id}: {'ok' if rc == 0 else 'failed'}"),
        )
    else:
        for n, i in enumerate(todo, 1):
            console.print(f"[bold]run {i} ({n}/{len(todo)}): {runs[i].run_id}[/bold]")
            result = execute(study, config, runs[i], folder, progress)
            if result["status"] != "ok":
                console.print(f"[yellow]failed:[/yellow] {result.get('error')}")
            write_csv(collect(folder), folder / "results.csv")
    path = write_csv(collect(folder), folder / "results.csv")
    console.print(f"results: {path}")


def report(
    results: Path = typer.Argument(..., exists=True, help="results.csv (or the sweep's folder)"),
    out: Optional[Path] = typer.Option(None, help="report folder (default: <results folder>/report)"),
    title: str = typer.Option("Efficiency study"),
) -> None:
    """Write report.md with the study's tables and figures (PNG) from a results table."""
    from .report import write_report
    from .results import collect, read_csv, write_csv

    if results.is_dir():
        csv_path = write_csv(collect(results), results / "results.csv")
    else:
        csv_path = results
    rows = read_csv(csv_path)
    if not rows:
        console.print(f"[red]error:[/red] {csv_path} has no runs")
        raise typer.Exit(2)
    path = write_report(rows, out or csv_path.parent / "report", title)
    console.print(f"report: {path}")


def pretrain(
    corpus: list[Path] = typer.Option(
        ..., exists=True, help="text files or folders (txt, CoNLL/BLUE tsv, csv); repeat the option for more"
    ),
    out: Path = typer.Option(..., help="backbone folder to write"),
    backbone: str = typer.Option("embedded", help="the encoder to continue from"),
    steps: int = typer.Option(200),
    batch_size: int = typer.Option(16),
    max_length: int = typer.Option(128),
    lr: float = typer.Option(5e-5),
    seed: int = typer.Option(0),
) -> None:
    """Continued masked-LM pre-training on in-house text; the folder works as --backbone anywhere."""
    from ..pretrain import pretrain as run

    try:
        folder = run(backbone, corpus, out, steps=steps, batch_size=batch_size, max_length=max_length, lr=lr, seed=seed)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"backbone written to {folder} (use --backbone {folder})")

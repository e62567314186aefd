"""``bedside data ...`` commands: synthetic and real data helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from bedside.training.synth import SPLITS, write_synthetic

app = typer.Typer(help="Synthetic and real data helpers.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Synthetic and real data helpers."""
    # A callback keeps ``synth`` a subcommand even while it is the only command.


def _csv_summary(path: Path, label_column: str) -> str:
    with path.open(encoding="utf-8", newline="") as f:
        labels = [row[label_column] for row in csv.DictReader(f)]
    counts = ", ".join(f"{label}: {labels.count(label)}" for label in sorted(set(labels)))
    return f"{len(labels)} notes ({counts})"


def _split_summary(name: str, root: Path, split: str) -> str:
    if name == "mortality":
        return _csv_summary(root / f"{split}.csv", "hospital_expire_flag")
    if name == "length_of_stay":
        return _csv_summary(root / f"{split}.csv", "los_label")
    if name == "i2b2":
        return f"{len(list((root / split / 'txt').glob('*.txt')))} records"
    text = (root / f"{split}.tsv").read_text(encoding="utf-8")
    if name == "ner":
        return f"{sum(1 for block in text.split(chr(10) * 2) if block.strip())} sentences"
    labels = [line.rsplit("\t", 1)[1] for line in text.splitlines() if line]
    return f"{len(labels)} pairs ({len(labels) - labels.count('none')} related)"


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the synthetic data sets into."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    size: int = typer.Option(600, "--size", min=3, help="Admission notes in total (about as many i2b2 sentences)."),
) -> None:
    """Write synthetic clinical data in the real formats (MIMIC CSV, i2b2, CoNLL, BLUE TSV)."""
    paths = write_synthetic(out, seed=seed, size=size)
    typer.echo(f"Wrote synthetic data (seed {seed}, size {size}) to {out}")
    for name, root in paths.items():
        typer.echo(f"  {name}: {root}")
        for split in SPLITS:
            typer.echo(f"    {split:<5} {_split_summary(name, root, split)}")

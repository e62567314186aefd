"""``bedside data ...`` commands: synthetic and real data helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from bedside.training.documents import read_documents
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
    if name == "notes":
        docs = read_documents(root / f"{split}.jsonl")
        words = sorted(len(d.text.split()) for d in docs)
        return f"{len(docs)} whole notes ({words[0]}-{words[-1]} words, {sum(len(d.entities) for d in docs)} entities)"
    text = (root / f"{split}.tsv").read_text(encoding="utf-8")
    if name == "ner":
        return f"{sum(1 for block in text.split(chr(10) * 2) if block.strip())} sentences"
    labels = [line.rsplit("\t", 1)[1] for line in text.splitlines() if line]
    return f"{len(labels)} pairs ({len(labels) - labels.count('none')} related)"


@app.command("documents")
def documents(
    conll: Path = typer.Option(..., exists=True, dir_okay=False, help="a CoNLL file (token<TAB>tag per line)"),
    out: Path = typer.Option(..., help="documents file to write (JSON lines)"),
    tokens: int = typer.Option(1000, min=1, help="tokens per document, about (whole sentences)"),
    backbone: str = typer.Option("embedded", help="whose tokenizer counts the tokens"),
) -> None:
    """Join a CoNLL file's sentences, in file order, into whole documents of about --tokens tokens."""
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.tasks import TaskSpec

    from .documents import join_sentences, write_documents
    from .loaders.conll import parse_conll, tag_set

    tokenizer = load_backbone(backbone).tokenizer
    task = TaskSpec(name="documents", kind="token", labels=tag_set(conll))
    sentences = parse_conll(conll, task)
    docs = join_sentences(sentences, tokens, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    write_documents(out, docs)
    typer.echo(f"{len(docs)} documents of about {tokens} tokens from {len(sentences)} sentences: {out}")


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the synthetic data sets into."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    size: int = typer.Option(600, "--size", min=3, help="Admission notes in total (about as many i2b2 sentences)."),
    long_notes: int = typer.Option(
        0, "--long-notes", min=0, help="Also this many whole annotated notes (300-3,000 words) in notes/."
    ),
) -> None:
    """Write synthetic clinical data in the real formats (MIMIC CSV, i2b2, CoNLL, BLUE TSV)."""
    if 0 < long_notes < 3:
        raise typer.BadParameter("at least 3 (one per split)", param_hint="--long-notes")
    paths = write_synthetic(out, seed=seed, size=size, long_notes=long_notes)
    typer.echo(f"Wrote synthetic data (seed {seed}, size {size}) to {out}")
    for name, root in paths.items():
        typer.echo(f"  {name}: {root}")
        for split in SPLITS:
            typer.echo(f"    {split:<5} {_split_summary(name, root, split)}")

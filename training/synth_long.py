"""Synthetic whole notes (300–3,000 words) with every entity and relation annotated.

A note is a title and sections (history, hospital course by day, consults, plan, ...), each a
paragraph, one sentence per line, or a dashed list, made of the i2b2-style sentences of
:mod:`~bedside.training.synth_sentences`, so every concept in the text is annotated with its
character offsets. Written as :mod:`~bedside.training.documents` JSON lines
(``notes/{train,val,test}.jsonl``): what the whole-note path is tested and measured on when no
real annotated notes are at hand.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from .documents import Document, DocumentWriter, write_documents
from .synth_common import pronouns
from .synth_sentences import _relation_sentence, bio_tags

MIN_WORDS, MAX_WORDS = 300, 3000
TITLES = ("DISCHARGE SUMMARY", "ADMISSION NOTE", "TRANSFER NOTE", "PROGRESS NOTE")
SECTIONS = (
    "HISTORY OF PRESENT ILLNESS",
    "PAST MEDICAL HISTORY",
    "HOSPITAL COURSE",
    "CONSULTS",
    "PROCEDURES",
    "ASSESSMENT AND PLAN",
    "DISCHARGE INSTRUCTIONS",
)
STYLES = ("paragraph", "lines", "list")


def long_note(rng: random.Random, id: str, words: int) -> Document:
    """One note of at least ``words`` words (its last sentence whole: a few more)."""
    pro = pronouns(rng.choice("MF"))
    writer = DocumentWriter(id)
    title = rng.choice(TITLES)
    writer.text(title + "\n\n")
    written, day = len(title.split()), 0
    while written < words:
        header = rng.choice(SECTIONS)
        if header == "HOSPITAL COURSE":
            day += 1
            header = f"HOSPITAL COURSE, DAY {day}"
        style = rng.choice(STYLES)
        writer.text(header + (":\n" if style != "paragraph" else ": "))
        written += len(header.split())
        count = rng.randint(3, 8)
        for k in range(count):
            if written >= words:
                break
            sentence = _relation_sentence(rng, pro)
            if style == "list":
                writer.text("- ")
                written += 1
            ids = writer.sentence(sentence.tokens, bio_tags(sentence))
            writer.doc.relations.extend((ids[a], ids[b], label) for a, label, b in sentence.relations)
            written += len(sentence.tokens)
            if k < count - 1 and written < words:
                writer.text(" " if style == "paragraph" else "\n")
        writer.text("\n\n")
    return writer.finish()


def note_lengths(rng: random.Random, n: int, low: int = MIN_WORDS, high: int = MAX_WORDS) -> list[int]:
    """Word targets spread evenly on a log scale between ``low`` and ``high``."""
    return [round(math.exp(rng.uniform(math.log(low), math.log(high)))) for _ in range(n)]


def write_long_notes(out: Path, rng: random.Random, counts: tuple[int, int, int]) -> Path:
    """``notes/{train,val,test}.jsonl`` with ``counts`` notes each; returns the folder."""
    folder = out / "notes"
    number = 0
    for split, n in zip(("train", "val", "test"), counts):
        docs = []
        for words in note_lengths(rng, n):
            number += 1
            docs.append(long_note(rng, f"note-{number:04d}", words))
        write_documents(folder / f"{split}.jsonl", docs)
    return folder

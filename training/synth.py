"""Deterministic synthetic clinical text, written in the real file formats.

:func:`write_synthetic` writes, under one output folder::

    mortality/{train,val,test}.csv        id,text,hospital_expire_flag   (van Aken MIMIC)
    length_of_stay/{train,val,test}.csv   id,text,los_label              (same admissions)
    i2b2/{split}/txt/record-NNN.txt       one sentence per line, tokens split by spaces
    i2b2/{split}/concept/record-NNN.con   c="chest pain" 5:3 5:4||t="problem"
    i2b2/{split}/rel/record-NNN.rel       c="lasix" 5:0 5:0||r="TrAP"||c="edema" 5:3 5:3
    ner/{split}.tsv                       CoNLL BIO, token<TAB>tag, blank line between sentences
    relations/{split}.tsv                 BLUE style: masked sentence<TAB>label, one line per
                                          candidate pair (label "none" when unrelated)
    notes/{split}.jsonl                   with ``long_notes``: whole notes of 300-3,000 words in
                                          sections, every entity and relation annotated
                                          (:mod:`bedside.training.synth_long`)

Admission notes get their mortality label from a latent risk score that sums the
weights of what the note says (severe findings, chronic disease, vitals, labs, age,
code status) plus noise, thresholded at a quantile, with a few labels redrawn at random.
Negated severe findings ("no evidence of septic shock") carry no risk, so a bag of
words is good but not perfect. Length of stay is a log-normal number of days whose
mean rises with ICU admission, procedures, surgery, complications and social
factors. The i2b2 sentences come from templates whose trigger words decide the
relation type. Only ``random.Random(seed)`` is used, so a seed gives byte-identical
files.
"""

from __future__ import annotations

import random
from pathlib import Path

from .synth_long import write_long_notes
from .synth_notes import _note_rows, _write_csv
from .synth_sentences import Sentence, _record, _write_ner, _write_record, _write_relations

SPLITS = ("train", "val", "test")
FORMATS = ("mortality", "length_of_stay", "i2b2", "ner", "relations")


def split_counts(n: int) -> tuple[int, int, int]:
    """70/15/15 split of ``n`` items with at least one item per split."""
    if n < 3:
        raise ValueError(f"need at least 3 items to split, got {n}")
    n_val = max(1, round(n * 0.15))
    n_test = max(1, round(n * 0.15))
    return n - n_val - n_test, n_val, n_test


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def write_synthetic(out_dir: str | Path, seed: int = 0, size: int = 600, long_notes: int = 0) -> dict[str, Path]:
    """Write all formats under out_dir; return {format_name: path}.

    ``size`` is the number of admission notes in total (split 70/15/15); the
    i2b2 records hold about ``size`` sentences in total, split the same way.
    ``long_notes``: that many whole annotated notes too (split the same way); the other
    files are the same with or without them.
    """
    out = Path(out_dir)
    master = random.Random(seed)
    note_rng = random.Random(master.getrandbits(64))
    sentence_rng = random.Random(master.getrandbits(64))

    rows = _note_rows(note_rng, size)
    records = [_record(sentence_rng) for _ in range(max(3, round(size / 10)))]
    note_counts, record_counts = split_counts(len(rows)), split_counts(len(records))
    note_start = record_start = 0
    for split, n_notes, n_records in zip(SPLITS, note_counts, record_counts):
        part = rows[note_start : note_start + n_notes]
        _write_csv(
            out / "mortality" / f"{split}.csv",
            ("id", "text", "hospital_expire_flag"),
            [(i, text, died) for i, text, died, _ in part],
        )
        _write_csv(
            out / "length_of_stay" / f"{split}.csv",
            ("id", "text", "los_label"),
            [(i, text, los) for i, text, _, los in part],
        )
        sentences: list[Sentence] = []
        for number in range(record_start, record_start + n_records):
            _write_record(out / "i2b2" / split, f"record-{number + 1:03d}", records[number])
            sentences.extend(records[number])
        _write_ner(out / "ner" / f"{split}.tsv", sentences)
        _write_relations(out / "relations" / f"{split}.tsv", sentences)
        note_start += n_notes
        record_start += n_records
    paths = {name: out / name for name in FORMATS}
    if long_notes:
        paths["notes"] = write_long_notes(out, random.Random(master.getrandbits(64)), split_counts(long_notes))
    return paths

"""Training data loaders: one function from a path and a task to examples per split.

>>> data = load_dataset("data/bc5cdr", task)            # format inferred: conll
>>> data["train"][0]                                      # TokenExample(...)
>>> data.notes                                            # e.g. "made val from 10 % of train"

Formats: ``mimic-csv`` (van Aken outcome CSVs), ``i2b2`` (2010 .txt/.con/.rel
folders), ``conll`` (BIO token files), ``re-tsv`` (BLUE relation TSV with
``@X$`` masks), ``csv`` and ``jsonl`` (named columns/fields). Every problem in
the data raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from bedside.adapters.tasks import TaskSpec

from ._common import SPLITS, LoadedDataset, find_split_files, read_lines, require_path
from .conll import EXTENSIONS as CONLL_EXTENSIONS
from .conll import load_conll, split_columns
from .errors import DataError, DataWarning
from .generic import load_csv, load_jsonl, read_csv_header
from .i2b2 import load_i2b2
from .mimic_csv import LABEL_COLUMNS as MIMIC_LABEL_COLUMNS
from .mimic_csv import load_mimic_csv
from .re_tsv import MASK, load_re_tsv
from .sampling import few_shot, stratified_split

LOADERS = {
    "mimic-csv": load_mimic_csv,
    "i2b2": load_i2b2,
    "conll": load_conll,
    "re-tsv": load_re_tsv,
    "csv": load_csv,
    "jsonl": load_jsonl,
}
FORMATS = tuple(LOADERS)
#: The task kinds each format can produce.
FORMAT_KINDS = {
    "mimic-csv": ("sequence",),
    "i2b2": ("token", "pair"),
    "conll": ("token",),
    "re-tsv": ("pair",),
    "csv": ("sequence",),
    "jsonl": ("sequence", "token", "pair"),
}
_DATA_EXTENSIONS = (".jsonl", ".csv") + CONLL_EXTENSIONS
_BIO_TAG = re.compile(r"O|[BIES]-\S+")
_SNIFF_LINES = 200

__all__ = [
    "DataError",
    "DataWarning",
    "FORMATS",
    "LoadedDataset",
    "few_shot",
    "infer_format",
    "load_conll",
    "load_csv",
    "load_dataset",
    "load_i2b2",
    "load_jsonl",
    "load_mimic_csv",
    "load_re_tsv",
    "stratified_split",
]


def normalize_format(format: str) -> str:
    name = format.strip().lower().replace("_", "-")
    aliases = {"mimic": "mimic-csv", "retsv": "re-tsv", "tsv-re": "re-tsv", "blue": "re-tsv"}
    name = aliases.get(name, name)
    if name not in LOADERS:
        raise DataError(f"unknown format {format!r}; use one of {list(FORMATS)}")
    return name


def _sniff_text_file(file: Path) -> str | None:
    lines = []
    for line in read_lines(file):
        if line.strip() and not line.startswith("-DOCSTART-"):
            lines.append(line)
            if len(lines) >= _SNIFF_LINES:
                break
    if not lines:
        return None
    if any(len(MASK.findall(line)) >= 2 for line in lines):
        return "re-tsv"
    columns = [split_columns(line) for line in lines]
    if all(len(c) >= 2 and _BIO_TAG.fullmatch(c[-1]) for c in columns):
        return "conll"
    return None


def infer_format(path: str | Path) -> str:
    """Guess the format of a file or folder, or raise :class:`DataError`.

    A folder with ``.con`` files is i2b2; otherwise its first split file is
    looked at: ``.jsonl`` -> jsonl; ``.csv`` with a ``hospital_expire_flag``
    or ``los_label`` column -> mimic-csv, other ``.csv`` -> csv;
    ``.tsv``/``.txt``/``.conll`` whose sentences hold two ``@X$`` masks ->
    re-tsv, whose lines all end in a BIO tag -> conll.
    """
    path = require_path(path)
    if path.is_dir():
        if next(path.rglob("*.con"), None) is not None:
            return "i2b2"
        candidates = find_split_files(path, _DATA_EXTENSIONS)
        if not candidates:
            raise DataError(
                "cannot infer the format: no .con files (i2b2) and no train/val/test files "
                f"({'/'.join(_DATA_EXTENSIONS)}); pass format= one of {list(FORMATS)}",
                file=path,
            )
        sample = next(files[0] for split in SPLITS for files in [candidates.get(split)] if files)
    else:
        sample = path
    suffix = sample.suffix.lower()
    found = None
    if suffix == ".jsonl":
        found = "jsonl"
    elif suffix == ".csv":
        header = read_csv_header(sample)
        found = "mimic-csv" if any(c in header for c in MIMIC_LABEL_COLUMNS) else "csv"
    elif suffix in CONLL_EXTENSIONS:
        found = _sniff_text_file(sample)
    if found is None:
        raise DataError(f"cannot infer the format; pass format= one of {list(FORMATS)}", file=sample)
    return found


def load_dataset(path: str | Path, task: TaskSpec, format: str | None = None, **options) -> LoadedDataset:
    """Load ``path`` as examples for ``task``: ``{"train": [...], "val": [...], "test": [...]}``.

    ``format`` is one of :data:`FORMATS` or None to infer it (see
    :func:`infer_format`). ``options`` go to the format's loader
    (e.g. ``label_map=``, ``text_column=``, ``seed=``, ``val_fraction=``); one given as None is
    left out (the loader's default), so a command passes its optional flags through as they are.
    The result is a dict subclass whose ``notes`` list what was decided for
    you (made-up splits), also issued as :class:`DataWarning`.
    """
    path = require_path(path)
    if format is None:
        name, how = infer_format(path), "inferred"
    else:
        name, how = normalize_format(format), "given"
    kinds = FORMAT_KINDS[name]
    if task.kind.value not in kinds:
        raise DataError(
            f"task/format mismatch: format {name!r} ({how}) gives {' or '.join(kinds)} examples, "
            f"but task {task.name!r} is a {task.kind.value} task",
            file=path,
        )
    loader = LOADERS[name]
    options = {k: v for k, v in options.items() if v is not None}
    accepted = [p for p in inspect.signature(loader).parameters if p not in ("path", "task")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(f"format {name!r} does not take option(s) {unknown}; it takes {accepted}", file=path)
    return loader(path, task, **options)

"""Generic CSV (sequence tasks) and JSONL (any task) with named columns/fields.

CSV: a header row; ``text_column`` and ``label_column`` name the columns
(default: the first of ``text``/``sentence``/``medical_abstract`` and of
``label``/``condition_label`` present). JSONL, one object per line:

* sequence: ``{"text": ..., "label": ...}``
* token: ``{"tokens": [...], "tags": [...]}``
* pair: ``{"text": ..., "head": [start, end], "tail": [start, end], "label": ...}``
  (character offsets, end exclusive; an optional ``meta`` object is kept)

An optional ``id`` column/field becomes the example id. Integer labels index
``task.labels`` (0-based); string labels must be labels (``label_map`` renames
raw values first, e.g. medical_abstracts' ``1..5`` via ``medical_tc_labels.csv``).
A folder holds ``train``/``val``/``test`` files (``dev``/``devel`` = val); a
single file is split 80/10/10, stratified, with ``seed``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bedside.adapters.examples import PairExample, Span, TextExample, TokenExample
from bedside.adapters.tasks import TaskKind, TaskSpec

from ._common import (
    DEFAULT_SEED,
    DEFAULT_VAL_FRACTION,
    LoadedDataset,
    load_label_map,
    load_split_files,
    read_lines,
    read_text,
    require_kind,
    resolve_label,
)
from .errors import DataError

CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl",)
TEXT_COLUMNS = ("text", "sentence", "medical_abstract")
LABEL_COLUMNS = ("label", "condition_label")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # clinical notes are long


# --------------------------------------------------------------------------- CSV


def read_csv_rows(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and ``(first line number, fields)`` of every non-empty record."""
    reader = csv.reader(io.StringIO(read_text(file), newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    last_line = 0
    try:
        for fields in reader:
            start, last_line = last_line + 1, reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if header is None:
                header = [field.strip() for field in fields]
            else:
                rows.append((start, fields))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=file, line=reader.line_num) from None
    if header is None:
        raise DataError("empty file: expected a header row", file=file)
    return header, rows


def read_csv_header(file: Path) -> list[str]:
    """Just the header row (cheap; used for format inference)."""
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            for fields in csv.reader(handle):
                if any(field.strip() for field in fields):
                    return [field.strip() for field in fields]
    except (UnicodeDecodeError, csv.Error):
        return []
    return []


def pick_column(
    header: list[str], given: str | None, defaults: Sequence[str], what: str, option: str, file: Path
) -> str:
    if given is not None:
        if given not in header:
            raise DataError(f"no {what} column {given!r}; the header has {header}", file=file, line=1)
        return given
    for name in defaults:
        if name in header:
            return name
    raise DataError(
        f"no {what} column: expected one of {list(defaults)} in the header {header}, or pass {option}=",
        file=file,
        line=1,
    )


def parse_csv(
    file: Path,
    task: TaskSpec,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str = "id",
    label_map: dict[str, str] | None = None,
    text_defaults: Sequence[str] = TEXT_COLUMNS,
    label_defaults: Sequence[str] = LABEL_COLUMNS,
) -> list[TextExample]:
    header, rows = read_csv_rows(file)
    text_col = pick_column(header, text_column, text_defaults, "text", "text_column", file)
    label_col = pick_column(header, label_column, label_defaults, "label", "label_column", file)
    text_i, label_i = header.index(text_col), header.index(label_col)
    id_i = header.index(id_column) if id_column in header else None
    examples = []
    for lineno, fields in rows:
        if len(fields) != len(header):
            raise DataError(
                f"expected {len(header)} fields ({','.join(header)}), got {len(fields)}", file=file, line=lineno
            )
        text = fields[text_i]
        if not text.strip():
            raise DataError(f"empty text in column {text_col!r}", file=file, line=lineno)
        label = resolve_label(fields[label_i], task, file=file, line=lineno, label_map=label_map)
        ident = fields[id_i].strip() if id_i is not None else ""
        examples.append(TextExample(text, label, id=ident or f"{file.name}:{lineno}"))
    return examples


def load_csv(
    path: str | Path,
    task: TaskSpec,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str = "id",
    label_map: Mapping[str, str] | str | Path | None = None,
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> LoadedDataset:
    """Sequence examples from a CSV file or a folder of split CSVs.

    ``label_map`` is a dict or a two-column CSV (``value,name``) renaming raw
    label values, e.g. ``medical_tc_labels.csv`` (``1`` -> ``neoplasms``).
    """
    require_kind(task, "csv", ("sequence",), "; use jsonl for token and pair tasks")
    mapping = load_label_map(label_map)
    return load_split_files(
        path,
        CSV_EXTENSIONS,
        lambda file: parse_csv(
            file, task, text_column=text_column, label_column=label_column, id_column=id_column, label_map=mapping
        ),
        seed=seed,
        val_fraction=val_fraction,
    )


# --------------------------------------------------------------------------- JSONL


def _field(record: dict, name: str, kind: type | tuple[type, ...], file: Path, line: int):
    if name not in record:
        raise DataError(f"missing field {name!r} (fields: {sorted(record)})", file=file, line=line)
    value = record[name]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"field {name!r} should be {expected}, got {type(value).__name__}", file=file, line=line)
    return value


def _span(record: dict, name: str, text: str, file: Path, line: int) -> Span:
    value = _field(record, name, list, file, line)
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise DataError(f"field {name!r} should be [start, end], got {value!r}", file=file, line=line)
    start, end = value
    if not 0 <= start < end <= len(text):
        raise DataError(
            f"span {name} [{start}, {end}) is outside the text ({len(text)} characters)", file=file, line=line
        )
    return Span(start, end)


def _token_record(record: dict, task: TaskSpec, f: dict, file: Path, lineno: int, ident: str, label_map):
    words = _field(record, f["tokens_field"], list, file, lineno)
    tags = _field(record, f["tags_field"], list, file, lineno)
    if not words:
        raise DataError(f"field {f['tokens_field']!r} is empty", file=file, line=lineno)
    if len(words) != len(tags):
        raise DataError(f"{len(words)} {f['tokens_field']} but {len(tags)} {f['tags_field']}", file=file, line=lineno)
    for word in words:
        if not isinstance(word, str) or not word or any(c.isspace() for c in word):
            raise DataError(f"token {word!r} is not a non-empty word without spaces", file=file, line=lineno)
    for tag in tags:
        if tag not in task.label_to_id:
            raise DataError(
                f"unknown tag {tag!r}; task {task.name!r} allows {list(task.labels)}", file=file, line=lineno
            )
    return TokenExample(list(words), list(tags), id=ident)


def _labelled_text(record: dict, task: TaskSpec, f: dict, file: Path, lineno: int, label_map) -> tuple[str, str]:
    text = _field(record, f["text_field"], str, file, lineno)
    if not text.strip():
        raise DataError(f"field {f['text_field']!r} is empty", file=file, line=lineno)
    raw = _field(record, f["label_field"], (str, int), file, lineno)
    return text, resolve_label(raw, task, file=file, line=lineno, label_map=label_map)


def _text_record(record: dict, task: TaskSpec, f: dict, file: Path, lineno: int, ident: str, label_map):
    text, label = _labelled_text(record, task, f, file, lineno, label_map)
    return TextExample(text, label, id=ident)


def _pair_record(record: dict, task: TaskSpec, f: dict, file: Path, lineno: int, ident: str, label_map):
    text, label = _labelled_text(record, task, f, file, lineno, label_map)
    head = _span(record, f["head_field"], text, file, lineno)
    tail = _span(record, f["tail_field"], text, file, lineno)
    meta = record.get("meta")
    return PairExample(text, head, tail, label, id=ident, meta=dict(meta) if isinstance(meta, dict) else {})


# One JSON object -> one example of the task's kind.
_RECORD_PARSERS = {TaskKind.sequence: _text_record, TaskKind.token: _token_record, TaskKind.pair: _pair_record}


def parse_jsonl(
    file: Path, task: TaskSpec, fields: dict[str, str], label_map: dict[str, str] | None = None
) -> list[TextExample | TokenExample | PairExample]:
    """One example per JSON line; ``fields`` names the keys (``text_field``, ``tags_field``, ...)."""
    id_field = fields["id_field"]
    parse = _RECORD_PARSERS[task.kind]
    examples = []
    for lineno, line in enumerate(read_lines(file), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"expected a JSON object: {exc.msg} (column {exc.colno})", file=file, line=lineno) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", file=file, line=lineno)
        ident = record.get(id_field)
        ident = str(ident) if ident is not None else f"{file.name}:{lineno}"
        examples.append(parse(record, task, fields, file, lineno, ident, label_map))
    return examples


def load_jsonl(
    path: str | Path,
    task: TaskSpec,
    *,
    text_field: str = "text",
    label_field: str = "label",
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    head_field: str = "head",
    tail_field: str = "tail",
    id_field: str = "id",
    label_map: Mapping[str, str] | str | Path | None = None,
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> LoadedDataset:
    """Examples of the task's kind from a JSONL file or a folder of split JSONL files."""
    mapping = load_label_map(label_map)
    fields = {name: value for name, value in locals().items() if name.endswith("_field")}
    return load_split_files(
        path,
        JSONL_EXTENSIONS,
        lambda file: parse_jsonl(file, task, fields, mapping),
        seed=seed,
        val_fraction=val_fraction,
    )

"""CoNLL-style BIO files: ``token<TAB>tag`` per line, a blank line between sentences.

Space-separated columns work too, and so do extra middle columns (the first
column is the token, the last the tag). ``-DOCSTART-`` lines are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bedside.adapters.examples import TokenExample
from bedside.adapters.tasks import TaskSpec

from ._common import DEFAULT_SEED, DEFAULT_VAL_FRACTION, LoadedDataset, load_split_files, read_lines, require_kind
from .errors import DataError

EXTENSIONS = (".tsv", ".txt", ".conll")


def split_columns(line: str) -> list[str]:
    """Tab-separated when the line has a tab, else whitespace-separated."""
    if "\t" in line:
        fields = [field.strip() for field in line.split("\t")]
        while fields and not fields[-1]:
            fields.pop()
        return fields
    return line.split()


def tag_set(file: Path) -> list[str]:
    """The tags a file uses, ``O`` first: a token task's labels when no spec names them."""
    tags = {split_columns(line)[-1] for line in read_lines(file) if line.strip() and not line.startswith("-DOCSTART-")}
    return ["O", *sorted(tags - {"O"})]


def parse_conll(file: Path, task: TaskSpec, type_map: Mapping[str, str] | None = None) -> list[TokenExample]:
    """One :class:`TokenExample` per sentence of ``file``; tags are checked
    against ``task.labels`` (after renaming entity types with ``type_map``)."""
    examples: list[TokenExample] = []
    words: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush() -> None:
        if words:
            examples.append(TokenExample(list(words), list(tags), id=f"{file.name}:{first_line}"))
            words.clear()
            tags.clear()

    for lineno, line in enumerate(read_lines(file), 1):
        if not line.strip():
            flush()
            continue
        fields = split_columns(line)
        if fields[0] == "-DOCSTART-":
            flush()
            continue
        if len(fields) < 2 or not fields[0]:
            raise DataError(
                f"expected 'token<TAB>tag', got {len(fields)} field{'s' * (len(fields) != 1)}: {line!r}",
                file=file,
                line=lineno,
            )
        token, tag = fields[0], fields[-1]
        if type_map and tag != "O" and tag[2:] in type_map:
            tag = f"{tag[:2]}{type_map[tag[2:]]}"
        if tag not in task.label_to_id:
            raise DataError(
                f"unknown tag {tag!r}; task {task.name!r} allows {list(task.labels)}", file=file, line=lineno
            )
        if not words:
            first_line = lineno
        words.append(token)
        tags.append(tag)
    flush()
    return examples


def load_conll(
    path: str | Path,
    task: TaskSpec,
    *,
    type_map: Mapping[str, str] | None = None,
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> LoadedDataset:
    """Read a folder of ``train``/``val``/``test`` files (``.tsv``, ``.txt`` or
    ``.conll``; ``dev``/``devel`` = val) or a single file (split 80/10/10).

    ``type_map`` renames entity types, e.g. ``{"Disease": "problem"}`` turns
    ``B-Disease`` into ``B-problem``. Without a val file, val is a stratified
    ``val_fraction`` of train (noted in ``.notes`` and warned).
    """
    require_kind(task, "conll", ("token",))
    return load_split_files(
        path, EXTENSIONS, lambda file: parse_conll(file, task, type_map), seed=seed, val_fraction=val_fraction
    )

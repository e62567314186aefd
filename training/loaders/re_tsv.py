"""BLUE-style relation TSV: a sentence with two masked entities and a label.

Lines are ``sentence<TAB>label`` or ``index<TAB>sentence<TAB>label`` (with an
optional header ``index<TAB>sentence<TAB>label``). The entities are masks such
as ``@GENE$ ... @DISEASE$`` (gad) or ``@problem$ ... @treatment$`` (i2b2 in
BLUE); the head is the first mask, the tail the second, and the spans cover
the mask text. Labels are matched as strings (gad: ``"0"``/``"1"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bedside.adapters.examples import PairExample, Span
from bedside.adapters.tasks import TaskSpec

from . import _common as common
from ._common import LoadedDataset, load_label_map, load_split_files, read_lines, require_kind, resolve_label
from .errors import DataError

EXTENSIONS = (".tsv", ".txt", ".conll")
MASK = re.compile(r"@[A-Za-z][A-Za-z0-9_-]*\$")
_HEADERS = (["sentence", "label"], ["index", "sentence", "label"])


def parse_re_tsv(file: Path, task: TaskSpec, label_map: dict[str, str] | None = None) -> list[PairExample]:
    examples: list[PairExample] = []
    seen_content = False
    for lineno, line in enumerate(read_lines(file), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if not seen_content:
            seen_content = True
            if [f.strip().lower() for f in fields] in _HEADERS:
                continue
        if len(fields) == 2:
            index, (sentence, raw_label) = None, fields
        elif len(fields) == 3:
            index, sentence, raw_label = fields
        else:
            raise DataError(
                f"expected 'sentence<TAB>label' or 'index<TAB>sentence<TAB>label', got {len(fields)} fields",
                file=file,
                line=lineno,
            )
        masks = list(MASK.finditer(sentence))
        if len(masks) != 2:
            raise DataError(
                f"expected two entity masks such as @GENE$ ... @DISEASE$ in the sentence, found {len(masks)}",
                file=file,
                line=lineno,
            )
        label = resolve_label(raw_label, task, file=file, line=lineno, label_map=label_map, allow_index=False)
        head, tail = masks
        examples.append(
            PairExample(
                text=sentence,
                head=Span(head.start(), head.end()),
                tail=Span(tail.start(), tail.end()),
                label=label,
                id=index.strip() if index is not None and index.strip() else f"{file.name}:{lineno}",
                meta={"head_type": head.group()[1:-1], "tail_type": tail.group()[1:-1]},
            )
        )
    return examples


def load_re_tsv(
    path: str | Path,
    task: TaskSpec,
    *,
    label_map: Mapping[str, str] | str | Path | None = None,
    seed: int = common.DEFAULT_SEED,
    val_fraction: float = common.DEFAULT_VAL_FRACTION,
) -> LoadedDataset:
    """Read a folder of ``train``/``val``/``test`` TSV files (``dev``/``devel``
    = val) or a single file (split 80/10/10).

    Without a val file (gad has only train/test) val is a stratified
    ``val_fraction`` of train with ``seed``; the returned ``.notes`` say so and
    a :class:`DataWarning` is issued. ``label_map`` renames raw labels first.
    """
    require_kind(task, "re-tsv", ("pair",))
    mapping = load_label_map(label_map)
    return load_split_files(
        path, EXTENSIONS, lambda file: parse_re_tsv(file, task, mapping), seed=seed, val_fraction=val_fraction
    )

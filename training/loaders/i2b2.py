"""i2b2 2010 record folders: ``.txt`` + ``.con`` (+ ``.rel``) per record.

* ``record.txt``: one sentence per line, whitespace-separated tokens.
* ``record.con``: ``c="chest pain" 5:3 5:4||t="problem"`` (line 1-based,
  token 0-based, end inclusive).
* ``record.rel``: ``c="lasix" 5:0 5:0||r="TrAP"||c="edema" 5:3 5:3``.

Files are matched by stem anywhere below a split folder (``DIR/train/txt/r1.txt``
with ``DIR/train/concept/r1.con`` and ``DIR/train/rel/r1.rel``). Split folders
are ``train``/``val``/``test`` (``dev``/``devel`` = val); without them every
record is train.

Token tasks get one :class:`TokenExample` per non-empty line. Pair tasks get
the i2b2 candidate pairs: within one sentence every (treatment, problem),
(test, problem) and (problem, problem) pair, labelled from ``.rel`` or with
the negative label.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bedside.adapters.examples import PairExample, Span, TokenExample
from bedside.adapters.kinds import PAIR
from bedside.adapters.tasks import NO_RELATION, TaskKind, TaskSpec

from ._common import SPLIT_ALIASES, SPLITS, LoadedDataset, read_lines, require_kind, require_path
from .errors import DataError, DataWarning

_SPAN = r'c="(?P<{0}text>.*?)"\s+(?P<{0}l1>\d+):(?P<{0}t1>\d+)\s+(?P<{0}l2>\d+):(?P<{0}t2>\d+)'
CON_LINE = re.compile(r"^\s*" + _SPAN.format("") + r'\s*\|\|\s*t="(?P<type>[^"]*)"\s*$')
REL_LINE = re.compile(
    r"^\s*" + _SPAN.format("a") + r'\s*\|\|\s*r="(?P<rel>[^"]*)"\s*\|\|\s*' + _SPAN.format("b") + r"\s*$"
)
_IGNORED_TXT = ("readme", "license", "licence")

Key = tuple[int, int, int]  # (line, first token, last token)


@dataclass(frozen=True)
class Concept:
    line: int  # 1-based line of the .txt
    start: int  # first token, 0-based
    end: int  # last token, inclusive
    type: str
    text: str
    source_line: int  # line in the .con file

    @property
    def key(self) -> Key:
        return (self.line, self.start, self.end)


@dataclass(frozen=True)
class Relation:
    label: str
    first: Key
    second: Key
    source_line: int


def _key(match: re.Match, prefix: str, file: Path, lineno: int, lines: list[list[str]]) -> Key:
    l1, t1, l2, t2 = (int(match.group(prefix + g)) for g in ("l1", "t1", "l2", "t2"))
    if l1 != l2:
        raise DataError(f"concept spans lines {l1} to {l2}; expected one line", file=file, line=lineno)
    if not 1 <= l1 <= len(lines):
        raise DataError(f"line {l1} is outside the text ({len(lines)} lines)", file=file, line=lineno)
    n = len(lines[l1 - 1])
    if not 0 <= t1 <= t2 < n:
        raise DataError(f"tokens {t1}..{t2} are outside line {l1} ({n} tokens)", file=file, line=lineno)
    return (l1, t1, t2)


def _matches(file: Path, pattern: re.Pattern, shape: str) -> Iterator[tuple[int, re.Match]]:
    """(line number, match) for every non-blank line of ``file``; a line of another shape is an error."""
    for lineno, raw in enumerate(read_lines(file), 1):
        if not raw.strip():
            continue
        match = pattern.match(raw)
        if not match:
            raise DataError(f"expected '{shape}', got {raw!r}", file=file, line=lineno)
        yield lineno, match


def parse_con(file: Path, lines: list[list[str]]) -> list[Concept]:
    concepts: dict[Key, Concept] = {}
    for lineno, match in _matches(file, CON_LINE, 'c="text" line:token line:token||t="type"'):
        key = _key(match, "", file, lineno, lines)
        concept = Concept(*key, match.group("type"), match.group("text"), lineno)
        if key in concepts:
            if concepts[key].type != concept.type:
                warnings.warn(
                    f"{file}:{lineno}: concept {key} already has type {concepts[key].type!r}; "
                    f"kept that, ignored {concept.type!r}",
                    DataWarning,
                    stacklevel=2,
                )
            continue
        concepts[key] = concept
    return sorted(concepts.values(), key=lambda c: c.key)


def parse_rel(
    file: Path, lines: list[list[str]], concepts: dict[Key, Concept], task: TaskSpec
) -> dict[frozenset, Relation]:
    relations: dict[frozenset, Relation] = {}
    shape = 'c="text" line:token line:token||r="type"||c="text" line:token line:token'
    for lineno, match in _matches(file, REL_LINE, shape):
        first = _key(match, "a", file, lineno, lines)
        second = _key(match, "b", file, lineno, lines)
        for key in (first, second):
            if key not in concepts:
                raise DataError(
                    f"relation argument {key[0]}:{key[1]} {key[0]}:{key[2]} is not a concept in the .con file",
                    file=file,
                    line=lineno,
                )
        label = match.group("rel")
        if label not in task.label_to_id:
            raise DataError(
                f"unknown label {label!r}; task {task.name!r} allows {list(task.labels)}", file=file, line=lineno
            )
        pair = frozenset((first, second))
        if pair in relations:
            warnings.warn(
                f"{file}:{lineno}: second relation between the same concepts; kept line {relations[pair].source_line}",
                DataWarning,
                stacklevel=2,
            )
            continue
        relations[pair] = Relation(label, first, second, lineno)
    return relations


def token_examples(
    stem: str, lines: list[list[str]], concepts: list[Concept], con_file: Path, task: TaskSpec
) -> list[TokenExample]:
    tags = [["O"] * len(tokens) for tokens in lines]
    # Longer concepts first, so an overlapping shorter one is the one dropped.
    for concept in sorted(concepts, key=lambda c: (c.line, c.start, c.start - c.end)):
        for prefix in ("B", "I"):
            if f"{prefix}-{concept.type}" not in task.label_to_id:
                raise DataError(
                    f"unknown entity type {concept.type!r}; task {task.name!r} has types {list(task.entity_types)}",
                    file=con_file,
                    line=concept.source_line,
                )
        row = tags[concept.line - 1]
        if any(tag != "O" for tag in row[concept.start : concept.end + 1]):
            warnings.warn(
                f"{con_file}:{concept.source_line}: concept {concept.text!r} overlaps another; skipped",
                DataWarning,
                stacklevel=2,
            )
            continue
        row[concept.start] = f"B-{concept.type}"
        for i in range(concept.start + 1, concept.end + 1):
            row[i] = f"I-{concept.type}"
    return [TokenExample(list(tokens), tags[i], id=f"{stem}:{i + 1}") for i, tokens in enumerate(lines) if tokens]


def candidate_pairs(concepts: list[Concept]) -> list[tuple[Concept, Concept]]:
    """i2b2 candidates in one sentence (line), as (head, tail) concepts by the pair kind's rule."""
    pairs = PAIR.candidate_pairs([c.type for c in concepts], [c.line for c in concepts])
    return [(concepts[head], concepts[tail]) for head, tail in pairs]


def pair_examples(
    stem: str,
    lines: list[list[str]],
    concepts: list[Concept],
    relations: dict[frozenset, Relation],
    rel_file: Path,
    negative: str,
) -> list[PairExample]:
    by_key = {c.key: c for c in concepts}
    texts = [" ".join(tokens) for tokens in lines]
    offsets = []
    for tokens in lines:
        starts, pos = [], 0
        for token in tokens:
            starts.append(pos)
            pos += len(token) + 1
        offsets.append(starts)

    def span(c: Concept) -> Span:
        starts = offsets[c.line - 1]
        return Span(starts[c.start], starts[c.end] + len(lines[c.line - 1][c.end]))

    examples = []
    used: set[frozenset] = set()
    for head, tail in candidate_pairs(concepts):
        pair = frozenset((head.key, tail.key))
        label = negative
        relation = relations.get(pair)
        if relation is not None:
            used.add(pair)
            label = relation.label
            head, tail = by_key[relation.first], by_key[relation.second]
        examples.append(
            PairExample(
                text=texts[head.line - 1],
                head=span(head),
                tail=span(tail),
                label=label,
                id=f"{stem}:{head.line}:{head.start}-{head.end}:{tail.start}-{tail.end}",
                meta={"head_type": head.type, "tail_type": tail.type},
            )
        )
    skipped = [r for p, r in relations.items() if p not in used]
    if skipped:
        warnings.warn(
            f"{rel_file}: {len(skipped)} relation(s) are not i2b2 candidates (different sentences "
            f"or concept types) and were skipped, e.g. line {skipped[0].source_line}",
            DataWarning,
            stacklevel=2,
        )
    return examples


def _index_by_stem(folder: Path, suffix: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for file in sorted(folder.rglob(f"*{suffix}")):
        if not file.is_file():
            continue
        if file.stem in found:
            raise DataError(f"two {suffix} files for record {file.stem!r}: {found[file.stem]} and {file}")
        found[file.stem] = file
    return found


def _records(folder: Path, split: str):
    """(stem, tokens per line, concepts, .con file) of every record below ``folder``."""
    texts = [t for t in _index_by_stem(folder, ".txt").values() if not t.stem.lower().startswith(_IGNORED_TXT)]
    if not texts:
        raise DataError(f"no .txt records for split {split!r}", file=folder)
    cons = _index_by_stem(folder, ".con")
    for txt in texts:
        if txt.stem not in cons:
            raise DataError(f"no matching {txt.stem}.con below {folder}", file=txt)
        lines = [line.split() for line in read_lines(txt)]
        yield txt, lines, parse_con(cons[txt.stem], lines), cons[txt.stem]


def _token_split(folder: Path, task: TaskSpec, split: str) -> list[TokenExample]:
    examples: list[TokenExample] = []
    for txt, lines, concepts, con_file in _records(folder, split):
        examples.extend(token_examples(txt.stem, lines, concepts, con_file, task))
    return examples


def _pair_split(folder: Path, task: TaskSpec, split: str) -> list[PairExample]:
    negative = task.negative_label or (NO_RELATION if NO_RELATION in task.label_to_id else None)
    if negative is None:
        raise DataError(
            f"task {task.name!r} has no negative label for i2b2 candidate pairs without a "
            f"relation; set negative_label (e.g. {NO_RELATION!r})"
        )
    rels = _index_by_stem(folder, ".rel")
    examples: list[PairExample] = []
    for txt, lines, concepts, _ in _records(folder, split):
        if txt.stem not in rels:
            raise DataError(f"no matching {txt.stem}.rel below {folder}", file=txt)
        relations = parse_rel(rels[txt.stem], lines, {c.key: c for c in concepts}, task)
        examples.extend(pair_examples(txt.stem, lines, concepts, relations, rels[txt.stem], negative))
    return examples


# What an i2b2 folder gives per task kind: BIO-tagged sentences, or the candidate pairs.
_SPLIT_LOADERS: dict[TaskKind, Callable[[Path, TaskSpec, str], list[TokenExample] | list[PairExample]]] = {
    TaskKind.token: _token_split,
    TaskKind.pair: _pair_split,
}


def load_split(folder: Path, task: TaskSpec, split: str) -> list[TokenExample] | list[PairExample]:
    examples = _SPLIT_LOADERS[task.kind](folder, task, split)
    if not examples:
        raise DataError(f"no examples in split {split!r} (empty split)", file=folder)
    return examples


def split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        split = SPLIT_ALIASES.get(child.name.lower()) if child.is_dir() else None
        if split is None:
            continue
        if split in found:
            raise DataError(f"two folders for split {split!r}: {found[split].name}, {child.name}", file=root)
        found[split] = child
    return found


def load_i2b2(path: str | Path, task: TaskSpec) -> LoadedDataset:
    """Token or pair examples per split from an i2b2 2010 folder."""
    require_kind(task, "i2b2", ("token", "pair"))
    root = require_path(path)
    if not root.is_dir():
        raise DataError("expected a folder of i2b2 records (.txt with .con/.rel)", file=root)
    folders = split_folders(root) or {"train": root}
    return LoadedDataset({s: load_split(folders[s], task, s) for s in SPLITS if s in folders})

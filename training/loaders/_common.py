"""Helpers shared by the loaders: split files, label checks, made-up splits."""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bedside.adapters.examples import Example
from bedside.adapters.tasks import TaskSpec

from .errors import DataError, DataWarning
from .sampling import stratified_split

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "devel": "val",
    "test": "test",
}
DEFAULT_SEED = 42
DEFAULT_VAL_FRACTION = 0.1
SINGLE_FILE_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?")


class LoadedDataset(dict):
    """``dict[split, list[Example]]`` plus ``notes``: what the loader decided for you.

    Notes (e.g. "val was made from 10 % of train") are also issued as
    :class:`DataWarning`.
    """

    def __init__(self, *args, notes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes: list[str] = list(notes or [])

    def note(self, message: str) -> None:
        self.notes.append(message)
        warnings.warn(message, DataWarning, stacklevel=3)


# --------------------------------------------------------------------------- files


def split_name(stem: str) -> tuple[str | None, bool]:
    """The split a file stem names, and whether the stem is exactly that name.

    ``train`` -> ("train", True); ``MP_IN_adm_dev`` -> ("val", False); ``notes`` -> (None, False).
    """
    lowered = stem.lower()
    if lowered in SPLIT_ALIASES:
        return SPLIT_ALIASES[lowered], True
    for alias, split in SPLIT_ALIASES.items():
        if lowered.endswith(("_" + alias, "-" + alias, "." + alias)):
            return split, False
    return None, False


def find_split_files(folder: Path, extensions: tuple[str, ...]) -> dict[str, list[Path]]:
    """Candidate files per split in ``folder`` (not recursive).

    A stem that is exactly a split name (``devel.tsv``) wins over one that ends
    with it (``train_dev.tsv``).
    """
    exact: dict[str, list[Path]] = {}
    suffixed: dict[str, list[Path]] = {}
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.suffix.lower() not in extensions:
            continue
        split, is_exact = split_name(file.stem)
        if split is not None:
            (exact if is_exact else suffixed).setdefault(split, []).append(file)
    found = {}
    for split in SPLITS:
        files = exact.get(split) or suffixed.get(split)
        if files:
            found[split] = files
    return found


def one_file_per_split(candidates: dict[str, list[Path]], folder: Path) -> dict[str, Path]:
    chosen = {}
    for split, files in candidates.items():
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise DataError(f"several files for split {split!r}: {names}; keep one", file=folder)
        chosen[split] = files[0]
    return chosen


def no_split_files_error(folder: Path, extensions: tuple[str, ...]) -> DataError:
    exts = "/".join(extensions)
    return DataError(
        f"no split files found; expected train, val (or dev/devel) and test files with extension {exts}", file=folder
    )


def require_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", file=path)
    return path


def read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", file=file) from None


def read_lines(file: Path) -> list[str]:
    """Lines without their line endings (``\\n`` splits lines, ``\\r`` is dropped)."""
    text = read_text(file)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


# --------------------------------------------------------------------------- labels


def load_label_map(label_map: Mapping | str | Path | None) -> dict[str, str] | None:
    """A raw-value -> label-name mapping, given as a dict or a two-column CSV
    (``value,name``; a header row such as ``condition_label,condition_name`` is skipped)."""
    if label_map is None:
        return None
    if isinstance(label_map, Mapping):
        return {str(k): str(v) for k, v in label_map.items()}
    file = require_path(label_map)
    rows = [row for row in csv.reader(read_text(file).splitlines()) if row]
    for lineno, row in enumerate(rows, 1):
        if len(row) != 2:
            raise DataError(f"expected 'value,name', got {len(row)} fields", file=file, line=lineno)
    if (
        len(rows) > 1
        and not _INT_RE.fullmatch(rows[0][0].strip())
        and all(_INT_RE.fullmatch(r[0].strip()) for r in rows[1:])
    ):
        rows = rows[1:]
    return {value.strip(): name.strip() for value, name in rows}


def resolve_label(
    raw: object,
    task: TaskSpec,
    *,
    file: Path,
    line: int,
    label_map: dict[str, str] | None = None,
    allow_index: bool = True,
) -> str:
    """Turn a raw label into one of ``task.labels``.

    A string equal to a label is that label; otherwise (when ``allow_index``)
    an integer ``i`` (or ``"i"``) is ``task.labels[i]``. ``label_map`` is
    applied first.
    """
    value = raw.strip() if isinstance(raw, str) else raw
    if label_map is not None and str(value) in label_map:
        value = label_map[str(value)]
    if isinstance(value, str) and value in task.label_to_id:
        return value
    if allow_index and not isinstance(value, bool):
        index = None
        if isinstance(value, int):
            index = value
        elif isinstance(value, float) and value.is_integer():
            index = int(value)
        elif isinstance(value, str) and _INT_RE.fullmatch(value):
            index = int(float(value))
        if index is not None:
            if 0 <= index < task.num_labels:
                return task.labels[index]
            raise DataError(
                f"label index {index} is out of range for task {task.name!r} "
                f"with labels {list(task.labels)} (0-based; pass label_map= for other codes)",
                file=file,
                line=line,
            )
    raise DataError(f"unknown label {value!r}; task {task.name!r} allows {list(task.labels)}", file=file, line=line)


# --------------------------------------------------------------------------- splits


def check_not_empty(examples: Sequence[Example], file: Path, split: str) -> list[Example]:
    if not examples:
        raise DataError(f"no examples in split {split!r} (empty split)", file=file)
    return list(examples)


def split_single_file(
    examples: list[Example], file: Path, seed: int, fractions: Mapping[str, float] | None = None
) -> LoadedDataset:
    """One file without splits -> stratified train/val/test (80/10/10 by default)."""
    fractions = dict(fractions or SINGLE_FILE_FRACTIONS)
    parts = stratified_split(examples, fractions, seed=seed)
    for split, part in parts.items():
        if fractions[split] > 0 and not part:
            raise DataError(f"only {len(examples)} examples: too few to make a {split!r} split", file=file)
    described = "/".join(f"{round(100 * f)}" for f in fractions.values())
    dataset = LoadedDataset({s: p for s, p in parts.items() if p})
    dataset.note(
        f"{file}: one file without splits; made a stratified {described} {'/'.join(fractions)} split with seed {seed}"
    )
    return dataset


def finish_splits(loaded: dict[str, list[Example]], source: Path, *, seed: int, val_fraction: float) -> LoadedDataset:
    """Order the splits and, when there is train but no val, carve val out of train."""
    dataset = LoadedDataset({s: loaded[s] for s in SPLITS if s in loaded})
    if "train" in dataset and "val" not in dataset and val_fraction > 0:
        parts = stratified_split(dataset["train"], {"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
        if not parts["val"] or not parts["train"]:
            raise DataError(
                f"train has only {len(dataset['train'])} examples: too few to make a val split", file=source
            )
        dataset = LoadedDataset(
            {s: (parts[s] if s in parts else dataset[s]) for s in SPLITS if s in parts or s in dataset}
        )
        dataset.note(
            f"{source}: no val split; made val from a stratified {round(100 * val_fraction)} % "
            f"of train with seed {seed} ({len(parts['train'])} train / {len(parts['val'])} val)"
        )
    return dataset


def load_split_files(
    path: str | Path,
    extensions: tuple[str, ...],
    parse: Callable[[Path], Sequence[Example]],
    *,
    seed: int,
    val_fraction: float,
    pick: Callable[[dict[str, list[Path]], Path], dict[str, Path]] = one_file_per_split,
) -> LoadedDataset:
    """The common shape of the file-based loaders.

    ``path`` is a folder of split files (``train``/``val``/``test`` with one of
    ``extensions``; ``dev``/``devel`` count as val) or one file, which is split
    80/10/10 stratified.
    """
    path = require_path(path)
    if path.is_file():
        examples = check_not_empty(parse(path), path, "all")
        return split_single_file(examples, path, seed)
    candidates = find_split_files(path, extensions)
    if not candidates:
        raise no_split_files_error(path, extensions)
    files = pick(candidates, path)
    loaded = {split: check_not_empty(parse(file), file, split) for split, file in files.items()}
    return finish_splits(loaded, path, seed=seed, val_fraction=val_fraction)


def require_kind(task: TaskSpec, format_name: str, kinds: tuple[str, ...], hint: str = "") -> None:
    """A clear error when a format cannot produce examples for the task's kind."""
    if task.kind.value not in kinds:
        allowed = " or ".join(kinds)
        raise DataError(
            f"format {format_name!r} gives {allowed} examples, but task {task.name!r} is a {task.kind.value} task{hint}"
        )

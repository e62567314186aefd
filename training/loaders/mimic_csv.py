"""MIMIC-III clinical outcome CSVs (van Aken et al. 2021).

Columns ``id,text,<label>`` where the label column is ``hospital_expire_flag``
(mortality, 0/1) or ``los_label`` (length of stay, 0..3) or a column you name.
Numeric label ``i`` is ``task.labels[i]``. A folder holds ``train``/``val``/
``test`` CSVs or van Aken's ``MP_IN_adm_train.csv``-style names (``dev`` =
val); when one folder holds several tasks' files, the ones whose header has
the label column are used.
"""

from __future__ import annotations

from pathlib import Path

from bedside.adapters.examples import TextExample
from bedside.adapters.tasks import TaskSpec

from ._common import (
    DEFAULT_SEED,
    DEFAULT_VAL_FRACTION,
    LoadedDataset,
    load_split_files,
    one_file_per_split,
    require_kind,
)
from .generic import CSV_EXTENSIONS, parse_csv, read_csv_header

LABEL_COLUMNS = ("hospital_expire_flag", "los_label")
TASK_LABEL_COLUMNS = {"mortality": "hospital_expire_flag", "length_of_stay": "los_label"}


def label_columns_for(task: TaskSpec, label_column: str | None) -> tuple[str, ...]:
    """The label column(s) to look for, most likely first."""
    if label_column is not None:
        return (label_column,)
    preferred = TASK_LABEL_COLUMNS.get(task.name)
    if preferred is None:
        return LABEL_COLUMNS
    return (preferred,) + tuple(c for c in LABEL_COLUMNS if c != preferred)


def parse_mimic_csv(
    file: Path, task: TaskSpec, label_column: str | None = None, text_column: str = "text", id_column: str = "id"
) -> list[TextExample]:
    return parse_csv(
        file,
        task,
        text_column=text_column,
        label_column=label_column,
        id_column=id_column,
        label_defaults=label_columns_for(task, None),
    )


def load_mimic_csv(
    path: str | Path,
    task: TaskSpec,
    *,
    label_column: str | None = None,
    text_column: str = "text",
    id_column: str = "id",
    seed: int = DEFAULT_SEED,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> LoadedDataset:
    """Sequence examples from a van Aken folder (or one CSV, split 80/10/10)."""
    require_kind(task, "mimic-csv", ("sequence",))
    wanted = label_columns_for(task, label_column)

    def pick(candidates: dict[str, list[Path]], folder: Path) -> dict[str, Path]:
        narrowed = {}
        for split, files in candidates.items():
            if len(files) > 1:
                for column in wanted:
                    matching = [f for f in files if column in read_csv_header(f)]
                    if matching:
                        files = matching
                        break
            narrowed[split] = files
        return one_file_per_split(narrowed, folder)

    return load_split_files(
        path,
        CSV_EXTENSIONS,
        lambda file: parse_mimic_csv(file, task, label_column, text_column, id_column),
        seed=seed,
        val_fraction=val_fraction,
        pick=pick,
    )

"""Task definitions: a name, a head kind and an ordered label list.

Four presets cover the product's clinical tasks; any other task is a small
YAML/JSON file with the same three fields (see :func:`load_task_spec`).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENTITY_TYPES = ("problem", "test", "treatment")
RELATION_TYPES = ("TrIP", "TrWP", "TrCP", "TrAP", "TrNAP", "TeRP", "TeCP", "PIP")
NO_RELATION = "none"
LOS_BANDS = ("<=3d", "3-7d", "7-14d", ">14d")

TASK_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class TaskKind(str, Enum):
    sequence = "sequence"  # pooled text -> one label
    token = "token"  # every word -> one BIO tag
    pair = "pair"  # two marked entities -> one relation label


def _bio(labels: tuple[str, ...]) -> None:
    if "O" not in labels:
        raise ValueError("token tasks need the 'O' tag")
    for label in labels:
        if label != "O" and not label.startswith(("B-", "I-")):
            raise ValueError(f"token label {label!r} is not BIO (B-X, I-X or O)")


# What a kind asks of its label list beyond uniqueness (kept here, not in .kinds: specs are read
# by light processes that never import torch).
_LABEL_RULES = {TaskKind.token: _bio}


class TaskSpec(BaseModel):
    """What an adapter predicts. Label order is the head's output order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TASK_NAME_PATTERN, description="lower-case identifier")
    kind: TaskKind
    labels: tuple[str, ...] = Field(min_length=2, description="ordered output labels")
    description: str = ""
    negative_label: str | None = Field(
        default=None, description="pair tasks: the no-relation class excluded from relation F1"
    )

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        if any(not label.strip() for label in labels):
            raise ValueError("labels must be non-empty")
        return labels

    @model_validator(mode="after")
    def _check_kind(self) -> TaskSpec:
        check = _LABEL_RULES.get(self.kind)
        if check is not None:
            check(self.labels)
        if self.negative_label is not None and self.negative_label not in self.labels:
            raise ValueError(f"negative_label {self.negative_label!r} is not a label")
        return self

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_id(self, label: str) -> int:
        try:
            return self.label_to_id[label]
        except KeyError:
            raise ValueError(
                f"unknown label {label!r} for task {self.name!r}; expected one of {list(self.labels)}"
            ) from None

    @property
    def entity_types(self) -> tuple[str, ...]:
        """Token tasks: the entity types behind the BIO tags, in label order."""
        seen: dict[str, None] = {}
        for label in self.labels:
            if label != "O":
                seen.setdefault(label[2:], None)
        return tuple(seen)


def bio_labels(entity_types: tuple[str, ...]) -> tuple[str, ...]:
    return ("O",) + tuple(f"{p}-{t}" for t in entity_types for p in ("B", "I"))


PRESETS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="mortality",
            kind=TaskKind.sequence,
            labels=("survived", "died"),
            description="in-hospital mortality from the admission note",
        ),
        TaskSpec(
            name="length_of_stay",
            kind=TaskKind.sequence,
            labels=LOS_BANDS,
            description="length-of-stay band from the admission note",
        ),
        TaskSpec(
            name="ner",
            kind=TaskKind.token,
            labels=bio_labels(ENTITY_TYPES),
            description="clinical entities: problem, test, treatment (i2b2 2010)",
        ),
        TaskSpec(
            name="relations",
            kind=TaskKind.pair,
            labels=RELATION_TYPES + (NO_RELATION,),
            negative_label=NO_RELATION,
            description="relation between two marked entities (i2b2 2010)",
        ),
    )
}


def load_task_spec(path: str | Path) -> TaskSpec:
    """Read a user-defined task from YAML or JSON (``name``, ``kind``, ``labels``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    # BaseLoader keeps every scalar a string: YAML 1.1 would read labels [no, yes] as booleans.
    data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.BaseLoader)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with name, kind and labels")
    return TaskSpec.model_validate(data)


def resolve_task(name_or_path: str) -> TaskSpec:
    """A preset by name, or a spec file by path."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml", ".json"} and path.is_file():
        return load_task_spec(path)
    raise ValueError(f"unknown task {name_or_path!r}: use one of {sorted(PRESETS)} or a .yaml/.json task spec")

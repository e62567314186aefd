"""A study file (YAML): what to train, on what, and which side studies to add."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bedside.adapters.artifact import Method


class Pretraining(BaseModel):
    """Continued masked-language-model training that makes this backbone before the runs."""

    model_config = ConfigDict(extra="forbid")
    base: str = "embedded"
    corpus: list[str]
    steps: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(128, ge=16)
    lr: float = Field(5e-5, gt=0)
    seed: int = 0


class BackboneEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: str | None = None  # embedded, embedded:layers=K, a folder, a hub id (None: made by `pretrain`)
    label: str | None = None
    domain: Literal["general", "biomedical", "clinical"] = "general"
    pretrain: Pretraining | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BackboneEntry:
        if (self.spec is None) == (self.pretrain is None):
            raise ValueError("a backbone has either a spec or a pretrain section")
        if self.pretrain is not None and not self.label:
            raise ValueError("a pre-trained backbone needs a label (its folder name)")
        return self

    @property
    def name(self) -> str:
        return self.label or str(self.spec)


class TaskEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str  # a preset name or a task spec file
    data: str  # a path, or synth:<folder>[:size] for the synthetic set (made once under OUT/data)
    format: str | None = None
    label_map: str | None = None
    label: str | None = None
    max_train: int | None = Field(None, ge=1, description="a fixed random subset of train (CPU budgets)")
    max_eval: int | None = Field(None, ge=1, description="a fixed random subset of val and of test")

    @property
    def name(self) -> str:
        return self.label or Path(self.task).stem


class SideScope(BaseModel):
    """Where the side studies run (default: the first backbone, every task, the first seed)."""

    model_config = ConfigDict(extra="forbid")
    backbones: list[str] | None = None
    tasks: list[str] | None = None
    seeds: list[int] | None = None


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    out: str = "study"
    backbones: list[BackboneEntry]
    methods: list[Method] = [Method.lora]
    tasks: list[TaskEntry]
    seeds: list[int] = [0]
    train: dict[str, Any] = Field(default_factory=dict, description="TrainSettings fields for every run")
    method_train: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-method overrides")
    ranks: list[int] = Field(default_factory=list, description="LoRA rank side study")
    few_shot: list[int] = Field(default_factory=list, description="examples per class side study (LoRA)")
    time_budgets: list[float] = Field(default_factory=list, description="seconds of training side study (LoRA)")
    side: SideScope = Field(default_factory=SideScope)

    @model_validator(mode="after")
    def _unique(self) -> StudyConfig:
        for kind, names in (("backbone", [b.name for b in self.backbones]), ("task", [t.name for t in self.tasks])):
            if len(set(names)) != len(names):
                raise ValueError(f"two {kind}s share a label: {names}")
        return self

    def base_dir(self, config_path: Path) -> Path:
        """Relative paths in the file are relative to the file."""
        return config_path.resolve().parent


def load_config(path: str | Path) -> StudyConfig:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a study file is a YAML mapping")
    return StudyConfig(**data)

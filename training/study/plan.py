"""Expand a study file into an ordered list of independent runs (index i is run i everywhere:
local workers, a Kubernetes Indexed Job, a resumed sweep)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bedside.adapters.artifact import Method

from .config import StudyConfig


@dataclass(frozen=True)
class Run:
    study: str  # main | rank | few_shot | time_budget
    backbone: str  # the backbone's label in the study file
    method: str
    task: str
    seed: int
    rank: int | None = None
    few_shot: int | None = None
    time_budget: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def run_id(self) -> str:
        parts = [self.study, self.backbone, self.method, self.task, f"s{self.seed}"]
        if self.rank is not None:
            parts.append(f"r{self.rank}")
        if self.few_shot is not None:
            parts.append(f"fs{self.few_shot}")
        if self.time_budget is not None:
            parts.append(f"tb{self.time_budget:g}")
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts))

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("overrides")
        return out


def expand(config: StudyConfig) -> list[Run]:
    runs: list[Run] = []
    for backbone in config.backbones:
        for method in config.methods:
            for task in config.tasks:
                for seed in config.seeds:
                    runs.append(Run("main", backbone.name, method.value, task.name, seed))
    side_backbones = config.side.backbones or [config.backbones[0].name]
    side_tasks = config.side.tasks or [t.name for t in config.tasks]
    side_seeds = config.side.seeds or config.seeds[:1]
    unknown = (set(side_backbones) - {b.name for b in config.backbones}) | (
        set(side_tasks) - {t.name for t in config.tasks}
    )
    if unknown:
        raise ValueError(f"side studies name unknown backbones or tasks: {sorted(unknown)}")
    lora = Method.lora.value
    for side_backbone in side_backbones:
        for side_task in side_tasks:
            for seed in side_seeds:
                where = (side_backbone, lora, side_task, seed)
                runs += [Run("rank", *where, rank=r) for r in config.ranks]
                runs += [Run("few_shot", *where, few_shot=n) for n in config.few_shot]
                runs += [Run("time_budget", *where, time_budget=t) for t in config.time_budgets]
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("the study file lists the same run twice (duplicate ranks, sizes or budgets?)")
    return runs

"""What the registry returns and records (pydantic; no torch imports here)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ..tasks import TASK_NAME_PATTERN
from .errors import InvalidRequest

VERSION_PATTERN = r"^v[1-9][0-9]{0,8}$"
PRIMARY_METRICS = ("auroc", "entity_f1", "relation_f1")  # first one present is shown in `list`


class ExpectedBase(NamedTuple):
    """The served base every pushed adapter must have been trained on."""

    name: str
    fingerprint: str
    hidden_size: int


class VersionInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task: str
    version: str
    sha256: str
    active: bool = False
    method: str
    metrics: dict[str, float | None] = Field(default_factory=dict)
    created_at: datetime | None = None  # when the artifact was trained/exported (manifest)
    pushed_at: datetime  # when the registry stored it
    pushed_by: str = ""
    servable: bool = True
    not_servable_reason: str | None = None
    name: str = ""  # the manifest's adapter name
    task_kind: str = ""
    labels: list[str] = Field(default_factory=list)
    base_name: str = ""
    base_fingerprint: str = ""
    files: dict[str, str] = Field(default_factory=dict)  # file name -> sha256
    path: Path

    @property
    def number(self) -> int:
        return int(self.version[1:])

    def primary_metric(self) -> tuple[str, float] | None:
        for key in PRIMARY_METRICS:
            value = self.metrics.get(key)
            if value is not None:
                return key, value
        return None


class AuditEntry(BaseModel):
    """One line of ``audit.jsonl``: who did what to which version, and how it ended."""

    model_config = ConfigDict(extra="ignore")

    time: datetime
    actor: str = Field(description="a token's hash prefix, user@host, or anonymous")
    action: str = Field(description="push | activate | rollback | delete | list ...")
    task: str | None = Field(None, description="only allow-listed names, never a client's text")
    version: str | None = None
    sha256: str | None = Field(None, description="the version's identity (its files' hashes)")
    outcome: str = Field(description="ok | refused | denied | failed")
    reason: str | None = None


def check_task_name(task: str) -> str:
    # Task names become directory names: only the allow-listed shape, checked before any lookup.
    if not isinstance(task, str) or not re.fullmatch(TASK_NAME_PATTERN, task):
        raise InvalidRequest("task names are lower-case letters, digits and '_' (starting with a letter)")
    return task


def check_version_name(version: str) -> str:
    if not isinstance(version, str) or not re.fullmatch(VERSION_PATTERN, version):
        raise InvalidRequest("versions look like v1, v2, ...")
    return version


def version_number(version: str) -> int:
    return int(check_version_name(version)[1:])


def record_to_info(task: str, version: str, record: dict[str, Any], path: Path, active: bool) -> VersionInfo:
    return VersionInfo(task=task, version=version, active=active, path=path, **record)

"""What the registry can tell without changing anything: versions, the active one, integrity, audit.

:class:`~.registry.Registry` adds the changes (push, activate, rollback, deactivate, delete).
"""

from __future__ import annotations

import builtins
import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .backend import StoreBackend
from .errors import InvalidArtifact, NotFound, RegistryError
from .integrity import drift
from .models import AuditEntry, VersionInfo, check_task_name, check_version_name, record_to_info


class RegistryReads:
    backend: StoreBackend

    # -- reading ----------------------------------------------------------------------
    def list(self, task: str | None = None) -> list[VersionInfo]:
        tasks = [check_task_name(task)] if task is not None else self.backend.tasks()
        infos = []
        for t in tasks:
            active = (self.backend.read_pointer(t) or {}).get("active")
            for v in self.backend.versions(t):
                try:
                    infos.append(self._info(t, v, active))
                except RegistryError:
                    continue  # a corrupt record: `verify` reports it
        return infos

    def show(self, task: str, version: str | None = None) -> VersionInfo:
        check_task_name(task)
        active = (self.backend.read_pointer(task) or {}).get("active")
        version = version if version is not None else active
        if version is None:
            raise NotFound(f"task {task!r} has no active version")
        return self._info(task, check_version_name(version), active)

    def active(self, task: str) -> VersionInfo | None:
        """The active version, None when none is: a pointer naming a version that is gone raises
        NotFound (a fault to report, not a task switched off)."""
        check_task_name(task)
        active = (self.backend.read_pointer(task) or {}).get("active")
        return None if active is None else self._info(task, check_version_name(active), active)

    def _info(self, task: str, version: str, active: str | None) -> VersionInfo:
        record = self.backend.read_record(task, version)
        try:
            return record_to_info(task, version, record, self.backend.artifact_dir(task, version), version == active)
        except ValidationError:
            raise InvalidArtifact(f"{task} {version}: the stored record is incomplete") from None

    def version_path(self, task: str, version: str) -> Path:
        return self.backend.artifact_dir(check_task_name(task), check_version_name(version))

    def state_token(self) -> str:
        """Changes whenever any task's active version changes (cheap: one small file per task)."""
        digest = hashlib.sha256()
        for task in self.backend.tasks():
            digest.update(task.encode() + b"\0" + self.backend.pointer_bytes(task) + b"\0")
        return digest.hexdigest()[:32]

    # -- integrity ------------------------------------------------------------------------
    def verify(self) -> builtins.list[str]:
        """Re-hash every stored file; return the problems (empty: no drift)."""
        pushed = {
            (e.task, e.version): e.sha256 for e in self.audit_entries() if e.action == "push" and e.outcome == "ok"
        }
        problems = []
        for task in self.backend.tasks():
            for version in self.backend.versions(task):
                try:
                    record = self.backend.read_record(task, version)
                except RegistryError as exc:
                    problems.append(exc.message)
                    continue
                try:
                    problems += [f"{task} {version}: {p}" for p in self._drift(task, version, record)]
                except RegistryError as exc:
                    problems.append(f"{task} {version}: {exc.message}")
                if pushed.get((task, version), record.get("sha256")) != record.get("sha256"):
                    problems.append(f"{task} {version}: the record's sha256 differs from the audit log's")
            active = (self.backend.read_pointer(task) or {}).get("active")
            if active and active not in self.backend.versions(task):
                problems.append(f"{task}: the active version {active} is missing")
        return problems

    def _drift(self, task: str, version: str, record: dict[str, Any]) -> builtins.list[str]:
        return drift(self.backend.artifact_dir(task, version), record)

    def _check_integrity(self, task: str, version: str, record: dict[str, Any]) -> None:
        if problems := self._drift(task, version, record):
            raise InvalidArtifact(f"{task} {version} changed since it was pushed: {problems[0]}")

    def audit_entries(self) -> builtins.list[AuditEntry]:
        return [AuditEntry.model_validate(line) for line in self.backend.audit_lines()]

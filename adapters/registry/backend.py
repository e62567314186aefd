"""Where adapter versions live, behind one small interface.

The :class:`~adapters.registry.registry.Registry` holds the rules (validation,
numbering, activation, audit); a backend only stores bytes and pointers. The
local filesystem backend (:mod:`.local`) works for several replicas when the
store is on a shared volume; an object-store backend would implement the same
methods (as lorax keeps adapter sources behind one ABC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any


class StoreBackend(ABC):
    """Storage primitives. Every write is atomic: readers see the old or the new state."""

    root: Path

    # -- staging and publishing ------------------------------------------------
    @abstractmethod
    def staging(self) -> AbstractContextManager[Path]:
        """A private scratch folder for one push; removed on exit unless committed."""

    @abstractmethod
    def commit(self, task: str, staged: Path, record: dict[str, Any]) -> str:
        """Give ``staged`` the next version number of ``task`` and publish it atomically."""

    @abstractmethod
    def clean_staging(self) -> list[str]:
        """Remove staging left behind by crashed pushes; return what was removed."""

    # -- reading ----------------------------------------------------------------
    @abstractmethod
    def tasks(self) -> list[str]: ...

    @abstractmethod
    def versions(self, task: str) -> list[str]:
        """Published versions of ``task``, oldest first."""

    @abstractmethod
    def read_record(self, task: str, version: str) -> dict[str, Any]:
        """What the registry recorded at push (raises NotFound)."""

    @abstractmethod
    def artifact_dir(self, task: str, version: str) -> Path:
        """A local folder holding the version's artifact files (read-only)."""

    # -- the active pointer -------------------------------------------------------
    @abstractmethod
    def task_lock(self, task: str) -> AbstractContextManager[None]:
        """Serialise pointer changes, numbering and deletes of one task across processes."""

    @abstractmethod
    def read_pointer(self, task: str) -> dict[str, Any] | None:
        """``{"active": "v3", "previous": "v2", ...}`` or None."""

    @abstractmethod
    def pointer_bytes(self, task: str) -> bytes:
        """The raw pointer (cheap change detection); b"" when there is none."""

    @abstractmethod
    def write_pointer(self, task: str, pointer: dict[str, Any]) -> None:
        """Replace the pointer atomically (call under :meth:`task_lock`)."""

    @abstractmethod
    def remove_version(self, task: str, version: str) -> None:
        """Make the version vanish atomically, then free its space (under the lock)."""

    # -- audit --------------------------------------------------------------------
    @abstractmethod
    def append_audit(self, entry: dict[str, Any]) -> None:
        """Append one JSON line; never rewrites earlier lines."""

    @abstractmethod
    def audit_lines(self) -> Iterator[dict[str, Any]]: ...

"""The resident cache: which loaded version serves each task, who is using it, what is retired.

One lock guards it all (the task states, the residents, their lease counts and the LRU of
retired versions) and is never held across a forward: a request takes a *lease* on its
task's version on the event loop, a swap flips a task's state in one assignment, and a
retired version is handed back for freeing once no lease holds it and the LRU is over its cap
(as vLLM keeps LRU eviction apart from the model).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bedside.adapters.registry import VersionInfo
from bedside.adapters.tasks import TaskSpec


@dataclass
class Resident:
    """An adapter version loaded into the backend as ``slot``. ``info`` is None while it is
    only staged (checked on the served model, waiting for its activation's swap)."""

    slot: str
    spec: TaskSpec
    info: VersionInfo | None = None
    leases: int = 0

    @property
    def task(self) -> str:
        return self.spec.name if self.info is None else self.info.task


@dataclass
class TaskState:
    task: str
    status: str = "no_adapter"  # ready | no_adapter | error
    reason: str | None = None
    resident: Resident | None = None

    def as_dict(self) -> dict:
        out: dict = {"status": self.status}
        if self.resident and self.resident.info:
            out.update(version=self.resident.info.version, sha256=self.resident.info.sha256)
        if self.reason:
            out["reason"] = self.reason
        return out


class ResidentCache:
    def __init__(self, retired_cap: int) -> None:
        self.retired_cap = retired_cap
        self.lock = threading.Lock()
        self.states: dict[str, TaskState] = {}
        self.residents: dict[str, Resident] = {}  # by slot
        self.retired: OrderedDict[str, Resident] = OrderedDict()  # inactive, kept for rollback (LRU)

    def ensure(self, task: str) -> TaskState:
        with self.lock:
            return self.states.setdefault(task, TaskState(task))

    @contextmanager
    def lease(self, task: str) -> Iterator[Resident | None]:
        """Pin the task's serving version for one request (None: the task is not ready)."""
        with self.lock:
            state = self.states[task]
            resident = state.resident if state.status == "ready" else None
            if resident is not None:
                resident.leases += 1
        try:
            yield resident
        finally:
            if resident is not None:
                with self.lock:
                    resident.leases -= 1

    def find(self, task: str, version: str) -> Resident | None:
        with self.lock:
            return next(
                (
                    r
                    for r in self.residents.values()
                    if r.info is not None and r.task == task and r.info.version == version
                ),
                None,
            )

    def register(self, resident: Resident) -> None:
        with self.lock:
            self.residents[resident.slot] = resident

    def flip(self, task: str, resident: Resident) -> None:
        """Make ``resident`` serve ``task`` (the atomic switch); the version it replaces is retired."""
        with self.lock:
            self.retired.pop(resident.slot, None)
            old = self.states[task].resident
            self.states[task] = TaskState(task, "ready", None, resident)
            if old is not None and old is not resident:
                self._retire(old)

    def set_state(self, task: str, status: str, reason: str) -> None:
        """Mark a task not ready (``no_adapter`` or ``error``); what served it is retired."""
        with self.lock:
            old = self.states.get(task, TaskState(task)).resident
            self.states[task] = TaskState(task, status, reason)
            if old is not None:
                self._retire(old)

    def _retire(self, resident: Resident) -> None:
        self.retired[resident.slot] = resident
        self.retired.move_to_end(resident.slot)

    def over_cap(self) -> bool:
        return len(self.retired) > self.retired_cap

    def evict(self) -> list[Resident]:
        """Take out the oldest retired versions beyond the cap that no request holds; the caller
        frees them in the backend (checked and dropped under the lock: no lease can start in between)."""
        with self.lock:
            over = len(self.retired) - self.retired_cap
            freed = []
            for slot, resident in list(self.retired.items()):
                if over <= 0:
                    break
                if resident.leases:
                    continue
                del self.retired[slot]
                self.residents.pop(slot, None)
                freed.append(resident)
                over -= 1
            return freed

    def leases(self) -> int:
        with self.lock:
            return sum(r.leases for r in self.residents.values())

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

from bedside.adapters.registry import Rollout, VersionInfo
from bedside.adapters.tasks import TaskSpec

from .canary import in_canary


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
    candidate: Resident | None = None  # a shadow or canary version beside the active one
    rollout: Rollout | None = None

    def as_dict(self) -> dict:
        out: dict = {"status": self.status}
        if self.resident and self.resident.info:
            out.update(version=self.resident.info.version, sha256=self.resident.info.sha256)
        if self.candidate is not None and self.rollout is not None:
            out["rollout"] = self.rollout.as_dict()
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Route:
    """Who answers one request (``serving``: the active version, or the canary), and the shadow
    version that runs beside it, if any."""

    serving: Resident | None
    shadow: Resident | None = None
    role: str = "active"  # active | canary


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
    def lease(self, task: str, key: str | None = None) -> Iterator[Route]:
        """Pin the versions of one request: the one that answers (the canary for its share of
        requests, by ``key`` when given; ``serving`` None: the task is not ready) and a shadow."""
        with self.lock:
            state = self.states[task]
            route = Route(None)
            if state.status == "ready" and state.resident is not None:
                route = _route(state, key)
            held = [r for r in (route.serving, route.shadow) if r is not None]
            for resident in held:
                resident.leases += 1
        try:
            yield route
        finally:
            self.release(held)

    def hold(self, resident: Resident) -> None:
        """One more lease on a version already leased, kept beyond its request (a shadow's
        comparison); :meth:`release` ends it."""
        with self.lock:
            resident.leases += 1

    def release(self, residents: list[Resident]) -> None:
        with self.lock:
            for resident in residents:
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
            before = self.states[task]
            old = before.resident
            candidate = before.candidate if before.candidate is not resident else None  # a promotion ends it
            self.states[task] = TaskState(
                task, "ready", None, resident, candidate, before.rollout if candidate else None
            )
            if old is not None and old is not resident:
                self._retire(old)

    def set_rollout(self, task: str, candidate: Resident | None, rollout: Rollout | None) -> None:
        """Run ``candidate`` beside the task's active version as ``rollout`` says (None: stop); the
        candidate it replaces is retired (unless it now serves: a promotion)."""
        with self.lock:
            state = self.states[task]
            old = state.candidate
            if candidate is not None:
                self.retired.pop(candidate.slot, None)
            state.candidate, state.rollout = candidate, rollout if candidate is not None else None
            if old is not None and old is not candidate and old is not state.resident:
                self._retire(old)

    def set_state(self, task: str, status: str, reason: str) -> None:
        """Mark a task not ready (``no_adapter`` or ``error``); what served it is retired."""
        with self.lock:
            before = self.states.get(task, TaskState(task))
            self.states[task] = TaskState(task, status, reason)
            for old in {id(r): r for r in (before.resident, before.candidate) if r is not None}.values():
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


def _route(state: TaskState, key: str | None) -> Route:
    candidate, rollout = state.candidate, state.rollout
    if candidate is None or rollout is None:
        return Route(state.resident)
    if rollout.mode == "shadow":
        return Route(state.resident, shadow=candidate)
    if in_canary(state.task, key, rollout.percent):
        return Route(candidate, role="canary")
    return Route(state.resident)

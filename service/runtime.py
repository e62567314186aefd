"""The resident model: one base, the active adapter of every task, hot swaps.

:class:`Runtime` puts the parts together: the shared base on its device, the inference
backend (:mod:`.backends`), the registry, the resident cache (:mod:`.residents`: leases and
the LRU, one lock) and the swapper beside it (:mod:`.swaps`: stage, swap, refresh, poll).
The model lock serialises forwards and the backend's attach/remove; the cache's lock is
never held across a forward.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from bedside.adapters.backbones import load_backbone, pick_device
from bedside.adapters.registry import Registry, Rollout
from bedside.adapters.registry.pointer import ROLLOUT_MODES
from bedside.adapters.tasks import PRESETS

from . import metrics
from .backends import make_backend
from .residents import Resident, ResidentCache, Route, TaskState
from .settings import ServiceSettings
from .swaps import Swapper

log = logging.getLogger("bedside.runtime")


class Runtime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = pick_device(settings.device)
        self.backbone = load_backbone(settings.backbone, device=self.device)
        self.backend = make_backend(self.backbone, settings)
        self.lock = threading.RLock()  # forwards and the backend's attach/remove
        self.cache = ResidentCache(settings.resident_cap)
        self.swaps = Swapper(self)
        # None: the registry's own check on a private copy of the base (the ONNX backend's
        # graphs may differ from torch in the last digit, the examples were written by torch).
        check = self.swaps.check_on_served if self.backend.checks_on_served_model else None
        self.registry = Registry(settings.store_path(), backbone=self.backbone, smoke=check)
        self._poller: threading.Thread | None = None
        self.started = False

    # what requests and admin calls read
    @property
    def states(self) -> dict[str, TaskState]:
        return self.cache.states

    @property
    def residents(self) -> dict[str, Resident]:
        return self.cache.residents

    @property
    def model(self):
        """The backend as the AdapterModel that predictors and the batcher run."""
        return self.backend

    # -- start-up -------------------------------------------------------------------
    def start(self, poll: bool = True) -> None:
        for task in self.known_tasks():
            self.cache.ensure(task)
        self.refresh()
        self.started = True
        if poll:
            self._poller = threading.Thread(target=self.swaps.poll, name="bedside-poll", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self.swaps.stop()

    def known_tasks(self) -> list[str]:
        """The allow-list: preset tasks plus any task with versions in the store."""
        tasks = dict.fromkeys(PRESETS)
        try:
            tasks.update(dict.fromkeys(v.task for v in self.registry.list()))
        except Exception as exc:  # an unreadable store must not stop start-up
            log.warning("cannot list the store: %s", type(exc).__name__)
        return list(tasks)

    def ready(self) -> bool:
        return self.started and any(s.status == "ready" for s in self.states.values())

    # -- requests and swaps ------------------------------------------------------------
    @contextmanager
    def lease(self, task: str, key: str | None = None) -> Iterator[Route]:
        """Pin the versions that serve one request (the active one or its canary, and a shadow).

        Runs on the event loop, so it never waits for the model lock (a forward holds it):
        a version retired meanwhile is freed now if the model is idle, else at the next swap or lease."""
        with self.cache.lease(task, key) as route:
            yield route
        if route.serving is not None and self.cache.over_cap():
            self.collect(wait=False)

    def refresh(self, only: str | None = None) -> None:
        self.swaps.refresh(only)

    def stage(self, task: str, version: str) -> dict | None:
        return self.swaps.stage(task, version)

    def collect(self, wait: bool) -> None:
        """Free retired versions beyond the LRU cap that no request holds (``wait``: for the model
        lock; else only if the model is idle now, and the next swap or lease's end tries again)."""
        if not self.lock.acquire(blocking=wait):
            return
        try:
            for resident in self.cache.evict():
                self.backend.remove(resident.slot)
                if resident.info is not None:  # publish no longer sees it
                    metrics.ACTIVE.labels(resident.task, resident.info.version).set(0)
                    self._publish_rollout(resident.task, resident.info.version, None)
        finally:
            self.lock.release()
        metrics.RESIDENT.set(len(self.residents))

    def publish(self, task: str) -> None:
        state = self.states[task]
        metrics.TASK_READY.labels(task).set(1 if state.status == "ready" else 0)
        for resident in list(self.residents.values()):
            if resident.task == task and resident.info is not None:
                active = state.resident is resident
                metrics.ACTIVE.labels(task, resident.info.version).set(1 if active else 0)
                self._publish_rollout(
                    task, resident.info.version, state.rollout if state.candidate is resident else None
                )
        if self.device.type == "cuda":
            metrics.DEVICE_MEMORY.set(torch.cuda.memory_allocated(self.device))

    @staticmethod
    def _publish_rollout(task: str, version: str, rollout: Rollout | None) -> None:
        """The version's part in a rollout, as gauges (0 once it has none)."""
        for mode in ROLLOUT_MODES:
            metrics.ROLLOUT.labels(task, version, mode).set(1 if rollout and rollout.mode == mode else 0)
        metrics.CANARY_PERCENT.labels(task, version).set(rollout.percent if rollout and rollout.mode == "canary" else 0)

"""The resident model: one base, the active adapter of every task, hot swaps.

A request takes a *lease* on its task's active version; a swap loads the new
version beside the old one, then flips the task's pointer in one assignment.
The old version is dropped when its last lease ends (or kept, up to an LRU cap,
for a quick rollback). All model mutations and forwards share one lock.

With the torch backend the registry's activation check runs on the served model itself:
the version is attached beside the serving ones and asked its examples, and stays
loaded ("staged"), so the swap that follows an activation only flips the pointer.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adapters.artifact import load_artifact
from adapters.backbones import load_backbone
from adapters.predict import Predictor
from adapters.registry import Registry, VersionInfo
from adapters.registry.integrity import drift, folder_sha256
from adapters.registry.smoke import check_predictions
from adapters.tasks import PRESETS, TaskSpec

from . import metrics
from .backends import make_backend
from .settings import ServiceSettings

log = logging.getLogger("bedside.runtime")

STAGED_CAP = 4  # versions checked on the served model whose activation has not reached the runtime yet


@dataclass
class Resident:
    """A loaded adapter version and how many requests are using it."""

    slot: str
    task: str
    info: VersionInfo
    spec: TaskSpec
    leases: int = 0


@dataclass
class Staged:
    """A version attached by the activation check, waiting for its swap."""

    slot: str
    spec: TaskSpec


@dataclass
class TaskState:
    task: str
    status: str = "no_adapter"  # ready | no_adapter | error
    reason: str | None = None
    resident: Resident | None = None

    def as_dict(self) -> dict:
        out = {"status": self.status}
        if self.resident:
            out.update(version=self.resident.info.version, sha256=self.resident.info.sha256)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Lease:
    resident: Resident
    predictor: Predictor = field(repr=False)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Runtime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = pick_device(settings.device)
        self.backbone = load_backbone(settings.backbone, device=self.device)
        self.backend = make_backend(self.backbone, settings)
        self.model = self.backend.model
        # None: the registry's own check on a private copy of the base (the ONNX backend's
        # graphs may differ from torch in the last digit, the examples were written by torch).
        check = self._check_on_served if self.backend.checks_on_served_model else None
        self.registry = Registry(settings.store, backbone=self.backbone, smoke=check)
        self.lock = threading.RLock()  # model mutations and forwards
        self._leases = threading.Lock()  # lease counts only: never held across a forward
        self._swaps = threading.RLock()  # one refresh at a time: the poller and admin calls would race
        self.states: dict[str, TaskState] = {}
        self.residents: dict[str, Resident] = {}
        self.retired: OrderedDict[str, Resident] = OrderedDict()  # inactive, kept for rollback (LRU)
        self._staged: OrderedDict[str, Staged] = OrderedDict()  # by version sha256
        self._stage_ids = itertools.count(1)
        self._token: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.started = False

    # -- start-up -------------------------------------------------------------------
    def start(self, poll: bool = True) -> None:
        for task in self.known_tasks():
            self.states.setdefault(task, TaskState(task))
        self.refresh()
        self.started = True
        if poll:
            self._poller = threading.Thread(target=self._poll_loop, name="bedside-poll", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()

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

    # -- requests ----------------------------------------------------------------------
    @contextmanager
    def lease(self, task: str):
        """Pin the task's active version for the duration of one request.

        Runs on the event loop, so it never waits for the model lock (a forward holds it):
        a version retired meanwhile is freed now if the model is idle, else at the next swap or lease."""
        with self._leases:
            state = self.states[task]
            resident = state.resident if state.status == "ready" else None
            if resident is not None:
                resident.leases += 1
        if resident is None:
            yield None
            return
        try:
            yield Lease(resident, Predictor(self.model, resident.slot))
        finally:
            with self._leases:
                resident.leases -= 1
            if len(self.retired) > self.settings.resident_cap and self.lock.acquire(blocking=False):
                try:
                    self._collect()
                finally:
                    self.lock.release()

    # -- swaps -------------------------------------------------------------------------
    def refresh(self, only: str | None = None) -> None:
        """Bring every task (or one) in line with the store's active versions.

        Serialised: two concurrent refreshes (the poller and an admin activation) would load the same
        version twice, or let one that read the pointer earlier switch the task back to a stale version."""
        with self._swaps:
            self._token = self._safe_token()
            for task in [only] if only else list(self.states):
                try:
                    info = self.registry.active(task)
                except Exception as exc:
                    self._set_error(task, f"store unreadable: {type(exc).__name__}")
                    continue
                current = self.states.setdefault(task, TaskState(task)).resident
                if info is None:
                    self._deactivate(task)
                elif current is None or current.info.version != info.version or self.states[task].status != "ready":
                    self.swap(task, info)

    def swap(self, task: str, info: VersionInfo) -> None:
        start = time.perf_counter()
        try:
            resident = self._resident(task, info.version)
            if resident is not None:  # still loaded (a rollback): what the check staged is not needed
                if (staged := self._staged.pop(info.sha256, None)) is not None:
                    self._drop(staged.slot)
            else:
                resident = self._load(task, info)
        except Exception as exc:
            metrics.ADAPTER_LOADS.labels(task, "error").inc()
            metrics.SWAPS.labels(task, "error").inc()
            log.error("task %s: version %s failed to load: %s", task, info.version, _reason(exc))
            if self.states[task].status != "ready":
                self._set_error(task, f"active version {info.version} failed to load: {_reason(exc)}")
            return
        # The flip needs only the lease lock (requests read states under it), not the model lock:
        # it does not wait for the forward in progress. Freeing what it retired needs the model.
        with self._leases:
            self.retired.pop(resident.slot, None)
            old = self.states[task].resident
            self.states[task] = TaskState(task, "ready", None, resident)  # the atomic switch
            if old is not None and old is not resident:
                self._retire(old)
        if self.lock.acquire(blocking=False):  # else the next lease's end or swap frees it
            try:
                self._collect()
            finally:
                self.lock.release()
        metrics.SWAPS.labels(task, "ok").inc()
        metrics.SWAP_SECONDS.observe(time.perf_counter() - start)
        self._publish(task)
        log.info("task %s now serves version %s", task, info.version)

    def _resident(self, task: str, version: str) -> Resident | None:
        return next((r for r in self.residents.values() if r.task == task and r.info.version == version), None)

    def _load(self, task: str, info: VersionInfo) -> Resident:
        path = self.registry.version_path(task, info.version)
        if problems := drift(path, {"files": info.files, "sha256": info.sha256}):
            raise ValueError(f"the stored files changed since the push: {problems[0]}")
        staged = self._staged.pop(info.sha256, None)
        if staged is not None and staged.spec.name == task:  # checked on this model at activation
            resident = Resident(staged.slot, task, info, staged.spec)
        else:
            if staged is not None:
                self._drop(staged.slot)
            artifact = load_artifact(path)
            if artifact.manifest.task.name != task:
                raise ValueError(f"artifact is for task {artifact.manifest.task.name!r}")
            prepared = self.backend.prepare(path, artifact)  # e.g. an ONNX export: serving goes on meanwhile
            slot = f"{task}:{info.version}:{next(self._stage_ids)}"
            with self.lock:
                self.backend.attach(prepared, slot)
                resident = Resident(slot, task, info, artifact.manifest.task)
                self._warm(resident, artifact.examples)
        with self._leases:  # residents change under the lease lock (see _collect)
            self.residents[resident.slot] = resident
        metrics.ADAPTER_LOADS.labels(task, "ok").inc()
        metrics.RESIDENT.set(len(self.residents))
        return resident

    def _check_on_served(self, artifact_dir: Path) -> None:
        """The registry's activation check, on the served model: attach the version beside the
        serving ones, ask its examples, keep it staged for the swap."""
        artifact_dir = Path(artifact_dir)
        sha = folder_sha256(artifact_dir)
        with self._swaps:
            if sha in self._staged:  # these bytes already answered their examples on this model
                self._staged.move_to_end(sha)
                return
            artifact = load_artifact(artifact_dir)
            prepared = self.backend.prepare(artifact_dir, artifact)
            slot = f"{artifact.manifest.task.name}:staged:{next(self._stage_ids)}"
            with self.lock:
                self.backend.attach(prepared, slot)
                try:
                    check_predictions(Predictor(self.model, slot), artifact, artifact_dir)
                except BaseException:
                    self.backend.remove(slot)
                    raise
            self._staged[sha] = Staged(slot, artifact.manifest.task)
            while len(self._staged) > STAGED_CAP:  # activations that never reached a swap
                self._drop(self._staged.popitem(last=False)[1].slot)

    def stage(self, task: str, version: str) -> dict | None:
        """Check a stored version on the served model now and keep it loaded, so that its
        activation later costs only the registry's bookkeeping and the flip. Returns
        ``{"ok": bool, "reason"?}`` (a version that fails stays stored; activating it will be
        refused), or None where activation checks run elsewhere (the ONNX backend)."""
        if not self.backend.checks_on_served_model:
            return None
        try:
            self._check_on_served(self.registry.version_path(task, version))
        except Exception as exc:
            log.warning("task %s: version %s failed its check on the served model: %s", task, version, _reason(exc))
            return {"ok": False, "reason": _reason(exc)}
        return {"ok": True}

    def _drop(self, slot: str) -> None:
        with self.lock:
            self.backend.remove(slot)

    def _warm(self, resident: Resident, examples: list[dict]) -> None:
        inputs = [e["input"] for e in examples[:2]] or None
        if inputs:
            Predictor(self.model, resident.slot).predict(inputs)

    def _retire(self, resident: Resident) -> None:
        self.retired[resident.slot] = resident
        self.retired.move_to_end(resident.slot)

    def _collect(self) -> None:
        """Free retired versions beyond the LRU cap once no request holds them."""
        with self._leases:  # swaps retire versions under this lock
            over = len(self.retired) - self.settings.resident_cap
            candidates = list(self.retired.items())
        for slot, resident in candidates:
            if over <= 0:
                break
            with self._leases:  # checked and dropped together, so no lease can start in between
                if resident.leases:
                    continue
                del self.retired[slot]
                self.residents.pop(slot, None)
            self.backend.remove(slot)
            metrics.ACTIVE.labels(resident.task, resident.info.version).set(0)  # _publish no longer sees it
            over -= 1
        metrics.RESIDENT.set(len(self.residents))

    def _deactivate(self, task: str) -> None:
        with self.lock:
            old = self.states[task].resident
            self.states[task] = TaskState(task, "no_adapter", "no active adapter version")
            if old is not None:
                self._retire(old)
                self._collect()
        self._publish(task)

    def _set_error(self, task: str, reason: str) -> None:
        with self.lock:
            self.states[task] = TaskState(task, "error", reason)
        self._publish(task)

    def _publish(self, task: str) -> None:
        state = self.states[task]
        metrics.TASK_READY.labels(task).set(1 if state.status == "ready" else 0)
        for resident in self.residents.values():
            if resident.task == task:
                active = state.resident is resident
                metrics.ACTIVE.labels(task, resident.info.version).set(1 if active else 0)
        if self.device.type == "cuda":
            metrics.DEVICE_MEMORY.set(torch.cuda.memory_allocated(self.device))

    # -- polling -----------------------------------------------------------------------
    def _safe_token(self) -> str | None:
        try:
            return self.registry.state_token()
        except Exception:
            return None

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            token = self._safe_token()
            if token is not None and token != self._token:
                for task in self.known_tasks():
                    self.states.setdefault(task, TaskState(task))
                self.refresh()


def _reason(exc: Exception) -> str:
    """Why a load failed, from the artifact/store error (these never hold request text)."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"

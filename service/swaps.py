"""Loading versions beside the serving ones and switching to them: stage, swap, refresh, poll.

With the torch backend the registry's activation check runs on the served model itself: the
version is attached beside the serving ones and asked its examples, and stays loaded
("staged"), so the swap that follows an activation only flips the task's pointer. Requests
in flight finish on the version they leased; the old one is freed when its last lease ends
(or kept, up to an LRU cap, for a quick rollback).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from bedside.adapters.artifact import load_artifact
from bedside.adapters.predict import Predictor
from bedside.adapters.registry import RegistryError, Rollout, VersionInfo
from bedside.adapters.registry.integrity import drift, folder_sha256
from bedside.adapters.registry.smoke import AnswerMismatch, check_predictions

from . import metrics
from .residents import Resident

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("bedside.runtime")

STAGED_CAP = 4  # versions checked on the served model whose activation has not reached the runtime yet


class Swapper:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cache = runtime.cache
        self.backend = runtime.backend
        self.lock = threading.RLock()  # one refresh at a time: the poller and admin calls would race
        self.staged: OrderedDict[str, Resident] = OrderedDict()  # by version sha256
        self._ids = itertools.count(1)
        self._token: str | None = None
        self._stop = threading.Event()

    # -- bringing tasks in line with the store -------------------------------------------
    def refresh(self, only: str | None = None) -> None:
        """Bring every task (or one) in line with the store's active versions.

        Serialised: two concurrent refreshes (the poller and an admin activation) would load the same
        version twice, or let one that read the pointer earlier switch the task back to a stale version."""
        registry = self.runtime.registry
        with self.lock:
            self._token = self._safe_token()
            for task in [only] if only else list(self.cache.states):
                try:
                    info = registry.active(task)
                    rollout = registry.rollout(task)
                except RegistryError as exc:  # the pointer names a version that is gone or unreadable
                    self._not_ready(task, "error", f"active version unreadable: {exc}")
                    continue
                except Exception as exc:
                    self._not_ready(task, "error", f"store unreadable: {type(exc).__name__}")
                    continue
                state = self.cache.ensure(task)
                current = state.resident
                if info is None:
                    self._not_ready(task, "no_adapter", "no active adapter version")
                elif (
                    current is None
                    or current.info is None
                    or current.info.version != info.version
                    or state.status != "ready"
                ):
                    self.swap(task, info)
                if info is not None:
                    self.follow_rollout(task, rollout)

    def follow_rollout(self, task: str, rollout: Rollout | None) -> None:
        """Load (or drop) the task's shadow or canary candidate as the store's pointer says."""
        state = self.cache.states[task]
        current = state.candidate
        if rollout is None or state.status != "ready":
            if current is not None:
                self.cache.set_rollout(task, None, None)
                self.runtime.collect(wait=False)
                self.runtime.publish(task)
                log.info("task %s: rollout ended", task)
            return
        if current is not None and current.info is not None and current.info.version == rollout.version:
            if state.rollout != rollout:  # e.g. a canary's share changed
                self.cache.set_rollout(task, current, rollout)
                self.runtime.publish(task)
            return
        try:
            info = self.runtime.registry.show(task, rollout.version)
            resident = self.cache.find(task, info.version) or self._load(task, info)
        except Exception as exc:  # the active version goes on answering alone
            metrics.ADAPTER_LOADS.labels(task, "error").inc()
            log.error("task %s: %s candidate %s failed to load: %s", task, rollout.mode, rollout.version, reason(exc))
            self.cache.set_rollout(task, None, None)
            self.runtime.publish(task)
            return
        self.cache.set_rollout(task, resident, rollout)
        self.runtime.collect(wait=False)
        self.runtime.publish(task)
        log.info("task %s: %s of version %s", task, rollout.mode, rollout.version)

    def swap(self, task: str, info: VersionInfo) -> None:
        start = time.perf_counter()
        try:
            resident = self.cache.find(task, info.version)
            if resident is not None:  # still loaded (a rollback): what the check staged is not needed
                if (staged := self.staged.pop(info.sha256, None)) is not None:
                    self._drop(staged.slot)
            else:
                resident = self._load(task, info)
        except Exception as exc:
            metrics.ADAPTER_LOADS.labels(task, "error").inc()
            metrics.SWAPS.labels(task, "error").inc()
            log.error("task %s: version %s failed to load: %s", task, info.version, reason(exc))
            if self.cache.states[task].status != "ready":
                self._not_ready(task, "error", f"active version {info.version} failed to load: {reason(exc)}")
            return
        # The flip needs only the cache's lock (requests read states under it), not the model lock:
        # it does not wait for the forward in progress. Freeing what it retired needs the model.
        self.cache.flip(task, resident)
        self.runtime.collect(wait=False)
        metrics.SWAPS.labels(task, "ok").inc()
        metrics.SWAP_SECONDS.observe(time.perf_counter() - start)
        self.runtime.publish(task)
        log.info("task %s now serves version %s", task, info.version)

    def _load(self, task: str, info: VersionInfo) -> Resident:
        path = self.runtime.registry.version_path(task, info.version)
        if problems := drift(path, {"files": info.files, "sha256": info.sha256}):
            raise ValueError(f"the stored files changed since the push: {problems[0]}")
        staged = self.staged.pop(info.sha256, None)
        if staged is not None and staged.spec.name == task:  # checked on this model at activation
            resident = Resident(staged.slot, staged.spec, info)
        else:
            if staged is not None:
                self._drop(staged.slot)
            artifact = load_artifact(path)
            if artifact.manifest.task.name != task:
                raise ValueError(f"artifact is for task {artifact.manifest.task.name!r}")
            prepared = self.backend.prepare(path, artifact)  # e.g. an ONNX export: serving goes on meanwhile
            slot = f"{task}:{info.version}:{next(self._ids)}"
            with self.runtime.lock:
                self.backend.attach(prepared, slot)
                resident = Resident(slot, artifact.manifest.task, info)
                self._warm(resident, artifact.examples)
        self.cache.register(resident)
        metrics.ADAPTER_LOADS.labels(task, "ok").inc()
        metrics.RESIDENT.set(len(self.cache.residents))
        return resident

    def _not_ready(self, task: str, status: str, why: str) -> None:
        self.cache.set_state(task, status, why)
        self.runtime.collect(wait=True)
        self.runtime.publish(task)

    # -- activation checks on the served model -----------------------------------------------
    def check_on_served(self, artifact_dir: Path) -> None:
        """The registry's activation check, on the served model: attach the version beside the
        serving ones, ask its examples, keep it staged for the swap."""
        artifact_dir = Path(artifact_dir)
        sha = folder_sha256(artifact_dir)
        with self.lock:
            if sha in self.staged:  # these bytes already answered their examples on this model
                self.staged.move_to_end(sha)
                return
            artifact = load_artifact(artifact_dir)
            prepared = self.backend.prepare(artifact_dir, artifact)
            slot = f"{artifact.manifest.task.name}:staged:{next(self._ids)}"
            flipped: AnswerMismatch | None = None
            with self.runtime.lock:
                self.backend.attach(prepared, slot)
                try:
                    check_predictions(Predictor(self.backend, slot), artifact, artifact_dir)
                except AnswerMismatch as exc:  # a malformed answer is never settled elsewhere
                    if self.backend.served_check_is_exact:
                        self.backend.remove(slot)
                        raise
                    flipped = exc
                except BaseException:
                    self.backend.remove(slot)
                    raise
            if flipped is not None:
                self._reference_check(artifact_dir, slot, flipped)  # outside the model lock: serving goes on
            self.staged[sha] = Resident(slot, artifact.manifest.task)
            while len(self.staged) > STAGED_CAP:  # activations that never reached a swap
                self._drop(self.staged.popitem(last=False)[1].slot)

    def _reference_check(self, artifact_dir: Path, slot: str, flipped: AnswerMismatch) -> None:
        """A quantised served model answered an example differently from the recorded answer:
        the version passes if the fp32 reference (a private copy of the base) still gives it."""
        from bedside.adapters.registry.smoke import default_smoke

        try:
            default_smoke(self.runtime.backbone)(artifact_dir)
        except BaseException:
            self._drop(slot)
            raise
        metrics.QUANTISED_CHECK_FLIPS.inc()
        log.warning("a smoke example answers differently on the quantised model (%s); the fp32 check passed", flipped)

    def stage(self, task: str, version: str) -> dict | None:
        """Check a stored version on the served model now and keep it loaded, so that its
        activation later costs only the registry's bookkeeping and the flip. Returns
        ``{"ok": bool, "reason"?}`` (a version that fails stays stored; activating it will be
        refused), or None where activation checks run elsewhere (the ONNX backend)."""
        if not self.backend.checks_on_served_model:
            return None
        try:
            self.check_on_served(self.runtime.registry.version_path(task, version))
        except Exception as exc:
            log.warning("task %s: version %s failed its check on the served model: %s", task, version, reason(exc))
            return {"ok": False, "reason": reason(exc)}
        return {"ok": True}

    def _drop(self, slot: str) -> None:
        with self.runtime.lock:
            self.backend.remove(slot)

    def _warm(self, resident: Resident, examples: list[dict]) -> None:
        inputs = [e["input"] for e in examples[:2]] or None
        if inputs:
            Predictor(self.backend, resident.slot).predict(inputs)

    # -- polling --------------------------------------------------------------------------------
    def _safe_token(self) -> str | None:
        try:
            return self.runtime.registry.state_token()
        except Exception:
            return None

    def poll(self) -> None:
        """Until :meth:`stop`: refresh whenever another process changed the store's pointers."""
        while not self._stop.wait(self.runtime.settings.poll_interval_s):
            token = self._safe_token()
            if token is not None and token != self._token:
                for task in self.runtime.known_tasks():
                    self.cache.ensure(task)
                self.refresh()

    def stop(self) -> None:
        self._stop.set()


def reason(exc: Exception) -> str:
    """Why a load failed, from the artifact/store error (these never hold request text)."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"

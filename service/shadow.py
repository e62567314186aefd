"""Shadow versions: a candidate runs on every request of its task beside the active version,
its answers are compared with the active ones, and only counts are kept.

A shadow never answers and never holds an answer up: its rows are queued after the live rows
(and refused first when the queue is long: "dropped"), run in forwards of their own, and are
compared in the background once the active answer is out. A shadow that fails or passes
``shadow_timeout_s`` is counted and forgotten. No request text is kept: the report holds
counts, agreement ratios and a histogram of the candidate's scores, per (task, active,
candidate) version pair, in this process and in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bedside.adapters.agreement import Agreement
from bedside.adapters.kinds import EncodedItem
from bedside.adapters.predict import Predictor

from . import metrics
from .batcher import Batcher, Job, QueueFull
from .residents import ResidentCache, Route

log = logging.getLogger("bedside.shadow")
OUTCOMES = ("compared", "dropped", "failed", "timeout")
FOUND_BY = ("both", "active_only", "candidate_only")  # an entity, by which version found it


@dataclass
class PairStats:
    """What one (active, candidate) pair of a task has shown so far."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    items: int = 0
    agree: int = 0
    probability_difference_sum: float = 0.0
    both: int = 0
    active_only: int = 0
    candidate_only: int = 0
    score_counts: list[int] = field(default_factory=lambda: [0] * len(metrics.SCORE_BUCKETS))

    def add(self, agreement: Agreement) -> None:
        self.items += agreement.items
        self.agree += agreement.agree
        self.probability_difference_sum += sum(agreement.probability_differences)
        self.both += agreement.both
        self.active_only += agreement.active_only
        self.candidate_only += agreement.candidate_only
        last = len(metrics.SCORE_BUCKETS) - 1  # the 1.0 bucket holds anything above, as Prometheus' +Inf would
        for score in agreement.candidate_scores:
            self.score_counts[min(bisect.bisect_left(metrics.SCORE_BUCKETS, score), last)] += 1

    def report(self) -> dict[str, Any]:
        entities = 2 * self.both + self.active_only + self.candidate_only
        return {
            "requests": dict(self.requests),
            "items_compared": self.items,
            "label_agreement": self.agree / self.items if self.items else None,
            "mean_abs_probability_difference": self.probability_difference_sum / self.items if self.items else None,
            "entities": {"both": self.both, "active_only": self.active_only, "candidate_only": self.candidate_only},
            "entity_agreement_f1": 2 * self.both / entities if entities else None,
            "candidate_scores": {f"{le:g}": n for le, n in zip(metrics.SCORE_BUCKETS, self.score_counts)},
        }


class ShadowStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pairs: dict[tuple[str, str, str], PairStats] = {}

    def touch(self, labels: tuple[str, str, str]) -> None:
        """Make a pair's report and series exist from its first request, so a dashboard and an
        alert see zeros (not absent series) before anything has been compared."""
        with self.lock:
            if labels in self.pairs:
                return
            self.pairs[labels] = PairStats()
        for outcome in OUTCOMES:
            metrics.SHADOW_REQUESTS.labels(*labels, outcome)
        for verdict in ("agree", "disagree"):
            metrics.SHADOW_ITEMS.labels(*labels, verdict)
        for found_by in FOUND_BY:
            metrics.SHADOW_ENTITIES.labels(*labels, found_by)
        metrics.SHADOW_PROB_DIFF.labels(*labels)
        metrics.SHADOW_SCORE.labels(*labels)

    def record(
        self, task: str, active: str, candidate: str, outcome: str, agreements: Sequence[Agreement] = ()
    ) -> None:
        labels = (task, active, candidate)
        metrics.SHADOW_REQUESTS.labels(*labels, outcome).inc()
        with self.lock:
            stats = self.pairs.setdefault(labels, PairStats())
            stats.requests[outcome] += 1
            for agreement in agreements:
                stats.add(agreement)
        for agreement in agreements:
            if agreement.items:
                metrics.SHADOW_ITEMS.labels(*labels, "agree").inc(agreement.agree)
                metrics.SHADOW_ITEMS.labels(*labels, "disagree").inc(agreement.items - agreement.agree)
            for found_by in FOUND_BY:
                if n := getattr(agreement, found_by):
                    metrics.SHADOW_ENTITIES.labels(*labels, found_by).inc(n)
            for diff in agreement.probability_differences:
                metrics.SHADOW_PROB_DIFF.labels(*labels).observe(diff)
            for score in agreement.candidate_scores:
                metrics.SHADOW_SCORE.labels(*labels).observe(score)

    def report(self, task: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"active": active, "candidate": candidate, **stats.report()}
                for (t, active, candidate), stats in sorted(self.pairs.items())
                if t == task
            ]


class ShadowRun:
    """One request's shadow: its rows queued behind the live ones; compared in the background
    once :meth:`answered` hands over the active answers (:meth:`cancel`: the request failed)."""

    def __init__(self, shadows: Shadows, task: str, route: Route, labels: tuple[str, str, str]) -> None:
        self.shadows, self.task, self.route, self.labels = shadows, task, route, labels
        self.active: asyncio.Future = asyncio.get_running_loop().create_future()
        self.started = time.perf_counter()

    def answered(self, results: list[dict]) -> None:
        if not self.active.done():
            self.active.set_result(results)

    def cancel(self) -> None:
        if not self.active.done():
            self.active.cancel()


class Shadows:
    """Starts and compares shadow runs (one per request of a task that has a shadow version)."""

    def __init__(
        self, batcher: Batcher, cache: ResidentCache, predictor: Callable[[str], Predictor], timeout_s: float
    ) -> None:
        self.batcher, self.cache, self.predictor = batcher, cache, predictor
        self.timeout_s = timeout_s
        self.stats = ShadowStats()
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references

    def start(
        self,
        task: str,
        route: Route,
        active: Predictor,
        encoded: list[EncodedItem | None],
        reencode: Callable[[Predictor], Awaitable[list[EncodedItem | None]]],
    ) -> ShadowRun:
        """Queue the shadow's rows now, right behind the live job, when both versions read inputs
        alike (the active version's rows); else ``reencode`` them off the event loop later."""
        candidate = route.shadow
        assert candidate is not None and candidate.info is not None and route.serving is not None
        labels = (task, route.serving.info.version if route.serving.info else "none", candidate.info.version)
        run = ShadowRun(self, task, route, labels)
        self.stats.touch(labels)
        shadow = self.predictor(candidate.slot)
        same = shadow.encoder.reads_like(active.encoder)
        job = None
        if same:
            job = self._submit(encoded, candidate.slot)
            if job is None:
                self.stats.record(*labels, "dropped")
                return run
        self.cache.hold(candidate)  # released when the comparison ends
        task_ = asyncio.ensure_future(self._compare(run, shadow, encoded if same else None, job, reencode))
        self._tasks.add(task_)
        task_.add_done_callback(self._tasks.discard)
        return run

    def _submit(self, encoded: list[EncodedItem | None], slot: str) -> Job | None:
        rows = [row for item in encoded if item is not None for row in item.rows]
        try:
            return self.batcher.submit(rows, slot, shadow=True)
        except QueueFull:
            return None

    async def _compare(self, run: ShadowRun, shadow: Predictor, encoded, job: Job | None, reencode) -> None:
        candidate = run.route.shadow
        assert candidate is not None
        outcome, agreements = "failed", []
        try:
            active = await run.active  # the request's own answers (cancelled: it failed; nothing to compare)
            if encoded is None:
                encoded = await reencode(shadow)
                job = self._submit(encoded, shadow.name)
            if job is None:
                outcome = "dropped"
                return
            remaining = self.timeout_s - (time.perf_counter() - run.started)
            try:
                logits = await asyncio.wait_for(asyncio.wrap_future(job.future), max(remaining, 0.0))
            except TimeoutError:
                job.cancel()
                outcome = "timeout"
                return
            at = 0
            for item, answer in zip(encoded, active):
                if item is None:
                    continue
                mine = shadow.decode(item, logits[at : at + item.windows])
                at += item.windows
                agreements.append(shadow.kind.agreement(answer, mine))
            outcome = "compared"
        except asyncio.CancelledError:
            if job is not None:
                job.cancel()
            outcome = ""  # the request failed or the server is going away: nothing to count
        except Exception as exc:  # a shadow's failure is its own: counted, never the answer's
            log.warning("task %s: shadow %s failed: %s", run.task, run.labels[2], type(exc).__name__)
        finally:
            self.cache.release([candidate])
            if outcome:
                self.stats.record(*run.labels, outcome, agreements)

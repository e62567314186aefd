"""Coalesce concurrent requests, for any mix of tasks, into shared encoder forwards.

Handlers submit encoded rows; one worker thread gathers jobs until a batch holds
``max_batch_rows`` rows or ``max_wait_ms`` passed, cuts them into forwards of similar
lengths, routes each forward once (:func:`~bedside.adapters.batch.route`: each adapter's
rows contiguous) and runs it on the backend, then hands each job its rows' logits. The
queue is bounded in rows: beyond it, submit refuses at once so the handler can answer 429.

Shadow jobs (a candidate version's rows, compared but never answered) are admitted only while
the queue is short, and run in forwards of their own after the pass's live forwards: they
never delay a live answer of their pass nor change it (a forward's shape changes a GEMM's
rounding), and under load they are the first rows refused.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from bedside.adapters.batch import Batch, route
from bedside.adapters.encoding import EncodedRow

from . import metrics

log = logging.getLogger("bedside.batcher")


class QueueFull(Exception):
    pass


MIN_CHUNK_ROWS = 8  # below this a forward's fixed costs start to show (measured on CPU)
# A pass takes, beyond its first forward's rows, what else is queued already, up to this many
# forwards' worth: sorted by length together, rows of several notes fill fuller forwards (on the
# ACI notes 16.2 rows a forward against 14.3 for one forward's worth), and nothing waits for it.
PASS_FORWARDS = 4
RETRY_AFTER_MAX_S = 30  # a refused client comes back within this, whatever the queue says


def chunks(lengths: list[int], max_rows: int, max_padding: float = 1.0) -> list[list[int]]:
    """Row indices in ascending length, cut into forwards of at most ``max_rows`` rows. A forward
    of ``MIN_CHUNK_ROWS`` or more is also cut where the next (longer) row would make more than
    ``max_padding`` of its tokens padding: on CPU a forward of 8 rows costs about as much per row
    as one of 32, while padded positions cost as much as real ones. ``max_padding`` 1 never cuts."""
    out: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        n = lengths[i]
        if current and (
            len(current) >= max_rows
            or (len(current) >= MIN_CHUNK_ROWS and 1 - (total + n) / ((len(current) + 1) * n) > max_padding)
        ):
            out.append(current)
            current, total = [], 0
        current.append(i)
        total += n
    if current:
        out.append(current)
    return out


def task_of(slot: str) -> str:
    """A slot's task (slots are named ``task:version:n`` or ``task:staged:n``)."""
    return slot.split(":", 1)[0]


@dataclass
class Job:
    rows: list[EncodedRow]
    slot: str
    shadow: bool = False
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)
    gone: bool = False  # its client left: rows not forwarded yet are dropped, even mid-pass

    def cancel(self) -> None:
        self.gone = True
        self.future.cancel()  # refused once its pass took it: ``gone`` covers that case


class Batcher:
    """``run``: the backend's forward of one routed batch (logits per row, in batch order)."""

    def __init__(
        self,
        run: Callable[[Batch], list[torch.Tensor]],
        lock: threading.RLock,
        max_batch_rows: int = 32,
        max_wait_ms: float = 5.0,
        max_queue_rows: int = 512,
        max_padding: float = 1.0,
        max_queue_wait_s: float = 0.0,
        shadow_queue_rows: int = 0,
    ) -> None:
        self.run = run
        self.lock = lock
        self.max_batch_rows = max_batch_rows
        self.max_padding = max_padding
        self.max_wait = max_wait_ms / 1000
        self.max_queue_rows = max_queue_rows
        self.max_queue_wait_s = max_queue_wait_s  # 0: no bound by time
        self.shadow_queue_rows = shadow_queue_rows  # shadow rows join only a queue this short
        self.rate = 0.0  # rows per second the forwards keep up (moving average; 0 until measured)
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._queued_rows = 0
        self._pass_rows = 0  # rows of the running pass not forwarded yet: waiting too
        self._count_lock = threading.Lock()
        self._gap = threading.Condition()  # notified when a batching pass's forwards end
        self._forwarding = False
        self._thread = threading.Thread(target=self._run, name="bedside-batcher", daemon=True)
        self._thread.start()

    def submit(self, rows: list[EncodedRow], slot: str, shadow: bool = False, admitted: bool = False) -> Job:
        """Queue a request's rows; QueueFull when they would pass the row bound, or when the rows
        already waiting would take longer than ``max_queue_wait_s`` at the measured rate (an empty
        queue always admits: no wait is shorter; before any rate is measured, a queue takes one
        pass's worth of rows, ``cold_rows``). ``shadow``: refused unless the queue, with
        these rows, holds at most ``shadow_queue_rows``. ``admitted``: a later stage of a request
        the queue took already (extract's pairs after its NER), bounded by its own limit: queued
        whatever waits, so the work done for its first stage is never thrown away."""
        bound = min(self.shadow_queue_rows, self.max_queue_rows) if shadow else self.max_queue_rows
        with self._count_lock:
            if not admitted and self._queued_rows + len(rows) > bound:
                raise QueueFull
            waiting = self._queued_rows + self._pass_rows
            slow = self.max_queue_wait_s and self.rate and waiting and not admitted
            if slow and (waiting + len(rows)) / self.rate > self.max_queue_wait_s:
                raise QueueFull
            if self._cold(waiting) and waiting + len(rows) > self.cold_rows and not admitted:
                raise QueueFull
            self._queued_rows += len(rows)
        metrics.QUEUE_ROWS.inc(len(rows))
        job = Job(rows, slot, shadow)
        self._queue.put(job)
        return job

    def admits(self) -> bool:
        """Whether a new request may be queued at all: False when the rows waiting already reach
        the row bound, or already take longer than ``max_queue_wait_s`` by themselves. Asked
        before a request is tokenised, so a refusal it would get anyway costs no tokenising."""
        with self._count_lock:
            if self._queued_rows >= self.max_queue_rows:
                return False
            waiting = self._queued_rows + self._pass_rows
            if self._cold(waiting) and waiting >= self.cold_rows:
                return False
            return not (self.max_queue_wait_s and self.rate and waiting / self.rate > self.max_queue_wait_s)

    @property
    def cold_rows(self) -> int:
        """Rows a queue with no measured rate takes: one pass's worth (the first forward measures it)."""
        return self.max_batch_rows * PASS_FORWARDS

    def _cold(self, waiting: int) -> bool:
        # No forward has run yet, so the wait bound cannot see what it would admit: after a restart
        # a burst would otherwise be queued whole, and most of it answered 504 long after, not 429.
        return bool(self.max_queue_wait_s and not self.rate and waiting)

    def retry_after(self, rows: int = 0) -> int:
        """Whole seconds until ``rows`` more would be admitted at the measured rate (the
        Retry-After of a refusal): when they fit the wait bound, or when nothing waits (an empty
        queue admits anything), whichever comes first; at least 1, at most RETRY_AFTER_MAX_S."""
        with self._count_lock:
            waiting = self._queued_rows + self._pass_rows
        if not (self.max_queue_wait_s and self.rate):
            return 1
        fits = (waiting + rows) / self.rate - self.max_queue_wait_s
        return max(1, min(RETRY_AFTER_MAX_S, math.ceil(min(fits, waiting / self.rate))))

    def close(self) -> None:
        self._queue.put(None)

    # -- worker ------------------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, rows = [first], len(first.rows)
        deadline = time.perf_counter() + self.max_wait
        # One forward's rows, waiting up to max_wait for them; then what is queued already.
        for limit, waits in ((self.max_batch_rows, True), (self.max_batch_rows * PASS_FORWARDS, False)):
            while rows < limit:
                remaining = deadline - time.perf_counter() if waits else 0.0
                try:
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:  # closing: left for the next take to see
                    self._queue.put(None)
                    return jobs
                jobs.append(job)
                rows += len(job.rows)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            n = sum(len(j.rows) for j in jobs)
            with self._count_lock:
                self._queued_rows -= n
                self._pass_rows = n
            metrics.QUEUE_ROWS.dec(n)
            running = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            with self._gap:
                self._forwarding = True
            try:
                for group in ([j for j in running if not j.shadow], [j for j in running if j.shadow]):
                    if group:  # live rows first, in forwards of their own
                        self._forward(group)
            finally:
                with self._count_lock:
                    self._pass_rows = 0
                with self._gap:
                    self._forwarding = False
                    self._gap.notify_all()

    def wait_for_gap(self, timeout: float) -> None:
        """Return at once when no forward runs, else when the running pass's forwards end (at most
        ``timeout``): work that can wait (counting a text that may be refused) lets them finish."""
        with self._gap:
            if self._forwarding:
                self._gap.wait(timeout)

    def _forward(self, jobs: list[Job]) -> None:
        now = time.perf_counter()
        for job in jobs:
            metrics.QUEUE_SECONDS.labels(task_of(job.slot)).observe(now - job.enqueued)
        rows = [row for job in jobs for row in job.rows]
        names = [job.slot for job in jobs for _ in job.rows]
        owner = [j for j, job in enumerate(jobs) for _ in job.rows]
        first = [0]
        for job in jobs:
            first.append(first[-1] + len(job.rows))
        left = [len(job.rows) for job in jobs]
        out: list[torch.Tensor | None] = [None] * len(rows)
        try:
            with self.lock, torch.inference_mode():
                # Similar lengths share a forward, so little compute goes to padding; a job is
                # answered as soon as its last row is done, so its client can send the next
                # request while the other forwards run (no idle gap between batches).
                for index in chunks([len(r) for r in rows], self.max_batch_rows, self.max_padding):
                    kept = [i for i in index if not jobs[owner[i]].gone]
                    if len(kept) < len(index):  # a pass holds several forwards: clients leave meanwhile
                        with self._count_lock:
                            self._pass_rows = max(0, self._pass_rows - (len(index) - len(kept)))
                        if not (index := kept):
                            continue
                    batch = route([rows[i] for i in index], [names[i] for i in index])
                    t0 = time.perf_counter()
                    logits = self.run(batch)
                    seconds = time.perf_counter() - t0
                    with self._count_lock:
                        self._pass_rows = max(0, self._pass_rows - len(batch))
                    metrics.FORWARD_SECONDS.observe(seconds)
                    self.rate = len(batch) / seconds if not self.rate else 0.8 * self.rate + 0.2 * len(batch) / seconds
                    for run in batch.runs:
                        metrics.BATCH_TASK_ROWS.labels(task_of(run.slot)).observe(len(run))
                    metrics.BATCH_ROWS.observe(len(batch))
                    metrics.BATCH_TOKENS.observe(sum(len(row) for row in batch.rows))
                    metrics.BATCH_TASKS.observe(len(batch.runs))
                    for i, lg in zip((index[k] for k in batch.order), logits):
                        out[i] = lg.float().cpu()
                        j = owner[i]
                        left[j] -= 1
                        if left[j] == 0:
                            jobs[j].future.set_result(out[first[j] : first[j + 1]])
        except Exception as exc:  # e.g. out of memory: fail the job(s) at fault, keep serving
            log.error("forward failed for %d rows: %s", len(rows), type(exc).__name__)
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            pending = [job for job in jobs if not job.future.done() and not job.gone]
            if len(jobs) > 1:  # one request's huge batch must not fail the requests it was batched with
                for job in pending:
                    self._forward([job])
                return
            for job in pending:
                job.future.set_exception(exc)

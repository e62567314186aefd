"""Coalesce concurrent requests, for any mix of tasks, into shared encoder forwards.

Handlers submit encoded rows; one worker thread gathers jobs until a batch holds
``max_batch_rows`` rows or ``max_wait_ms`` passed, runs the multi-adapter model
once per chunk, and hands each job its rows' logits. The queue is bounded in rows:
beyond it, submit refuses at once so the handler can answer 429.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from adapters.encoding import EncodedRow

from . import metrics

log = logging.getLogger("bedside.batcher")


class QueueFull(Exception):
    pass


@dataclass
class Job:
    rows: list[EncodedRow]
    slot: str
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        self.future.cancel()


class Batcher:
    def __init__(self, model, lock: threading.RLock, max_batch_rows: int = 32, max_wait_ms: float = 5.0,
                 max_queue_rows: int = 512) -> None:
        self.model = model
        self.lock = lock
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000
        self.max_queue_rows = max_queue_rows
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bedside-batcher", daemon=True)
        self._thread.start()

    def submit(self, rows: list[EncodedRow], slot: str) -> Job:
        with self._count_lock:
            if self._queued_rows + len(rows) > self.max_queue_rows:
                raise QueueFull
            self._queued_rows += len(rows)
        metrics.QUEUE_ROWS.inc(len(rows))
        job = Job(rows, slot)
        self._queue.put(job)
        return job

    def close(self) -> None:
        self._queue.put(None)

    # -- worker ------------------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, rows = [first], len(first.rows)
        deadline = time.perf_counter() + self.max_wait
        while rows < self.max_batch_rows:
            remaining = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            jobs.append(job)
            rows += len(job.rows)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            n = sum(len(j.rows) for j in jobs)
            with self._count_lock:
                self._queued_rows -= n
            metrics.QUEUE_ROWS.dec(n)
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if live:
                self._forward(live)

    def _forward(self, jobs: list[Job]) -> None:
        now = time.perf_counter()
        for job in jobs:
            metrics.QUEUE_SECONDS.observe(now - job.enqueued)
        rows = [row for job in jobs for row in job.rows]
        names = [job.slot for job in jobs for _ in job.rows]
        # Similar lengths share a chunk, so little compute goes to padding.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: list[torch.Tensor | None] = [None] * len(rows)
        try:
            with self.lock, torch.inference_mode():
                for start in range(0, len(order), self.max_batch_rows):
                    index = order[start : start + self.max_batch_rows]
                    t0 = time.perf_counter()
                    logits = self.model([rows[i] for i in index], [names[i] for i in index])
                    metrics.FORWARD_SECONDS.observe(time.perf_counter() - t0)
                    metrics.BATCH_ROWS.observe(len(index))
                    metrics.BATCH_TOKENS.observe(sum(len(rows[i]) for i in index))
                    metrics.BATCH_TASKS.observe(len({names[i] for i in index}))
                    for i, lg in zip(index, logits):
                        out[i] = lg.float().cpu()
        except Exception as exc:  # e.g. out of memory: fail the job(s) at fault, keep serving
            log.error("forward failed for %d rows: %s", len(rows), type(exc).__name__)
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(jobs) > 1:  # one request's huge batch must not fail the requests it was batched with
                for job in jobs:
                    self._forward([job])
                return
            jobs[0].future.set_exception(exc)
            return
        cursor = 0
        for job in jobs:
            job.future.set_result(out[cursor : cursor + len(job.rows)])
            cursor += len(job.rows)

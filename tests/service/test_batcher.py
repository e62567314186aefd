"""The batcher's cut of a batch into forwards."""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager

import pytest

from bedside.service.batcher import MIN_CHUNK_ROWS, Batcher, Job, chunks


def padding(lengths, index) -> float:
    longest = max(lengths[i] for i in index)
    return 1 - sum(lengths[i] for i in index) / (len(index) * longest)


@pytest.mark.parametrize("seed", range(5))
def test_every_row_once_in_ascending_length_within_the_limits(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(5, 128) for _ in range(rng.randint(1, 90))]
    forwards = chunks(lengths, max_rows=32, max_padding=0.1)
    flat = [i for f in forwards for i in f]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for f in forwards:
        assert len(f) <= 32
        # a forward of MIN_CHUNK_ROWS or more took its last row only within the padding limit
        if len(f) > MIN_CHUNK_ROWS:
            assert padding(lengths, f) <= 0.1 + 1e-9


def test_a_spread_batch_is_cut_and_an_even_one_is_not():
    even = [100] * 32
    assert chunks(even, 32, 0.1) == [list(range(32))]
    spread = [10] * 16 + [120] * 16
    forwards = chunks(spread, 32, 0.1)
    assert [len(f) for f in forwards] == [16, 16]
    assert chunks(spread, 32, 1.0) == [sorted(range(32), key=spread.__getitem__)]  # 1: never cut


def test_small_batches_are_never_cut_for_padding():
    lengths = [5, 120, 7, 64, 100, 3, 90]  # fewer than MIN_CHUNK_ROWS rows
    assert len(chunks(lengths, 32, 0.0)) == 1
    assert [len(f) for f in chunks(list(range(1, 70)), 32, 1.0)] == [32, 32, 5]


@contextmanager
def stalled_batcher(**settings):
    """A batcher whose forwards never finish while the test runs (closed after it)."""
    gate = threading.Event()
    batcher = Batcher(lambda batch: gate.wait(5) and [], threading.RLock(), **settings)
    try:
        yield batcher
    finally:
        gate.set()
        batcher.close()


def test_the_queue_admits_only_what_it_can_start_within_its_wait_bound():
    from bedside.service.batcher import QueueFull

    with stalled_batcher(max_queue_wait_s=0.5) as batcher:
        batcher.rate = 10.0  # rows per second, as if measured
        with batcher._count_lock:
            batcher._queued_rows = 4  # 0.4 s of work already waiting
        with pytest.raises(QueueFull):
            batcher.submit([object()] * 2, "mortality:v1:0")  # 0.6 s > 0.5 s: refused
        batcher.max_queue_wait_s = 1.0
        assert batcher.submit([object()] * 2, "mortality:v1:0")  # 0.6 s ≤ 1 s: admitted


def test_work_that_can_wait_waits_for_the_running_pass_only():
    import time

    import torch

    from bedside.adapters.encoding import EncodedRow
    from bedside.adapters.tasks import TaskKind

    started, gate = threading.Event(), threading.Event()

    def run(batch):
        started.set()
        gate.wait(5)
        return [torch.zeros(2) for _ in batch.rows]

    batcher = Batcher(run, threading.RLock(), max_wait_ms=0.0)
    try:
        t0 = time.perf_counter()
        batcher.wait_for_gap(5.0)  # nothing runs: at once
        assert time.perf_counter() - t0 < 1.0
        job = batcher.submit([EncodedRow([101, 7, 102], TaskKind.sequence)], "mortality:v1:0")
        assert started.wait(5)
        waited = threading.Event()
        waiter = threading.Thread(target=lambda: (batcher.wait_for_gap(5.0), waited.set()))
        waiter.start()
        assert not waited.wait(0.3)  # the forward still runs: the waiter waits
        gate.set()
        assert waited.wait(5) and job.future.result(5)  # the pass ended: the waiter goes on
        waiter.join(5)
    finally:
        gate.set()
        batcher.close()


def test_a_later_stage_of_an_admitted_request_is_queued_whatever_waits():
    from bedside.service.batcher import QueueFull

    with stalled_batcher(max_queue_rows=8, max_queue_wait_s=0.5) as batcher:
        batcher.rate = 10.0
        with batcher._count_lock:
            batcher._queued_rows = 6  # 0.6 s of work waiting, two rows below the row bound
        for rows in (1, 4):  # over the wait bound; over both bounds
            with pytest.raises(QueueFull):
                batcher.submit([object()] * rows, "ner:v1:0")
            # extract's pairs after its NER was admitted: the NER work is not thrown away
            assert batcher.submit([object()] * rows, "relations:v1:0", admitted=True)


def test_a_queue_already_over_a_bound_admits_no_new_request_before_its_rows_are_known():
    with stalled_batcher(max_queue_rows=8, max_queue_wait_s=0.5) as batcher:
        assert batcher.admits()  # empty, and no rate measured yet
        batcher.rate = 10.0
        for waiting, admits in ((4, True), (6, False), (8, False)):  # 0.4 s; 0.6 s > 0.5 s; the row bound
            with batcher._count_lock:
                batcher._queued_rows = waiting
            assert batcher.admits() is admits
        batcher.max_queue_wait_s = 0  # no wait bound: only the row bound refuses
        with batcher._count_lock:
            batcher._queued_rows = 7
        assert batcher.admits()


def test_a_pass_takes_what_is_queued_already_up_to_its_forwards_and_counts_it_as_waiting():
    from bedside.service.batcher import PASS_FORWARDS, Job

    batcher = Batcher(lambda batch: [], threading.RLock(), max_batch_rows=4, max_wait_ms=0, max_queue_wait_s=1.0)
    batcher.close()
    batcher._thread.join(5)  # the worker stopped: the test takes passes itself
    for n in (3, 3, 3) + (4,) * PASS_FORWARDS:
        batcher._queue.put(Job([object()] * n, "ner:v1:0"))
    first = batcher._take()
    # beyond the first forward's 4 rows, the queued jobs up to PASS_FORWARDS forwards' rows
    assert sum(len(j.rows) for j in first) >= 4 * PASS_FORWARDS - 3 and len(first) < 3 + PASS_FORWARDS
    assert len(batcher._take()) >= 1  # the rest stays for the next pass
    batcher.rate = 10.0
    batcher._pass_rows = 8  # 0.8 s of the running pass still to forward: the wait bound sees it
    assert batcher.admits()
    batcher._pass_rows = 11
    assert not batcher.admits()


def test_retry_after_is_the_wait_until_a_refused_request_would_be_admitted():
    from bedside.service.batcher import RETRY_AFTER_MAX_S

    with stalled_batcher(max_queue_wait_s=0.5) as batcher:
        assert batcher.retry_after(10) == 1  # no rate measured yet
        batcher.rate = 10.0
        with batcher._count_lock:
            batcher._queued_rows = 15  # 1.5 s waiting
        assert batcher.retry_after(0) == 1  # fits once 1 s of it is done
        assert batcher.retry_after(10) == 2  # 2.5 s with its own rows: fits after 2 s
        assert batcher.retry_after(1000) == 2  # never fits the bound: admitted when the queue is empty (1.5 s)
        with batcher._count_lock:
            batcher._queued_rows = 100_000
        assert batcher.retry_after(0) == RETRY_AFTER_MAX_S


def test_a_job_whose_client_left_mid_pass_is_not_forwarded():
    import torch

    from bedside.adapters.encoding import EncodedRow
    from bedside.adapters.tasks import TaskKind

    forwarded, first_runs, gate = [], threading.Event(), threading.Event()

    def run(batch):
        forwarded.append(len(batch.rows))
        first_runs.set()
        gate.wait(5)
        return [torch.zeros(2) for _ in batch.rows]

    batcher = Batcher(run, threading.RLock(), max_batch_rows=2, max_wait_ms=0)
    batcher.close()
    batcher._thread.join(5)  # the worker stopped: the test runs the pass itself
    row = EncodedRow([101, 7, 102], TaskKind.sequence)
    jobs = [Job([row, row], "mortality:v1:0") for _ in range(3)]
    for job in jobs:
        job.future.set_running_or_notify_cancel()  # taken by the pass: no longer cancellable
    worker = threading.Thread(target=batcher._forward, args=(jobs,))
    worker.start()
    assert first_runs.wait(5)
    jobs[1].cancel()  # its client leaves while the pass's first forward runs
    gate.set()
    worker.join(5)
    assert forwarded == [2, 2]  # three jobs of two rows, one forward each: the second never ran
    assert jobs[0].future.result(1) and jobs[2].future.result(1)
    assert batcher._pass_rows == 0


def test_before_any_forward_is_measured_the_queue_takes_one_pass_of_rows():
    from bedside.service.batcher import PASS_FORWARDS, QueueFull

    with stalled_batcher(max_batch_rows=4, max_queue_wait_s=0.5) as batcher:
        assert batcher.rate == 0 and batcher.cold_rows == 4 * PASS_FORWARDS
        with batcher._count_lock:
            batcher._queued_rows = batcher.cold_rows - 2  # a burst right after a start
        assert batcher.admits()
        assert batcher.submit([object()] * 2, "ner:v1:0")  # fills one pass exactly
        assert not batcher.admits()
        with pytest.raises(QueueFull):
            batcher.submit([object()], "ner:v1:0")
        assert batcher.submit([object()] * 3, "relations:v1:0", admitted=True)  # a later stage still joins
        batcher.rate = 1000.0  # the first forward measured the rate: the wait bound decides again
        assert batcher.admits() and batcher.submit([object()], "ner:v1:0")
    with stalled_batcher(max_batch_rows=4) as unbounded:  # no wait bound: only the row bound applies
        with unbounded._count_lock:
            unbounded._queued_rows = 100
        assert unbounded.admits()

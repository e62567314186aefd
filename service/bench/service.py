"""Service benchmark: a real server under closed-loop HTTP load, against the same model in process.

For each concurrency C, C clients send one-note requests (tasks in turn) back to back for a
fixed time after a warm-up; answered requests/s and latency percentiles are recorded. The
in-process figure is the served composition itself (:class:`~service.runtime.Runtime`, the
store's active adapters, the same backend) running forwards of min(C, max batch) mixed rows of
the same notes, without HTTP, batching queue or JSON. Useful FLOP/s counts real tokens only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import torch

from bedside.adapters.encoding import pad_rows

from ..settings import ServiceSettings
from .soak import _pct
from .workload import body


def load_runtime(store: Path, backbone: str, backend: str = "torch", **settings):
    """The service's runtime in this process, every active adapter loaded (no polling)."""
    from ..runtime import Runtime

    runtime = Runtime(ServiceSettings(store=store, backbone=backbone, backend=backend, device="cpu", **settings))
    runtime.start(poll=False)
    return runtime


def encoded(runtime, items: list[tuple[str, object]]):
    """Rows and slot names for (task, item) pairs, tokenised as the service does."""
    from bedside.adapters.predict import Predictor

    predictors = {
        t: Predictor(runtime.model, s.resident.slot, runtime.settings.max_length)  # as served
        for t, s in runtime.states.items()
        if s.resident
    }
    missing = sorted({t for t, _ in items} - set(predictors))
    if missing:
        raise ValueError(f"the store has no active adapter for {', '.join(missing)}")
    pairs = [(row, predictors[t].name) for t, item in items for row in predictors[t].encode(item).rows]
    return [row for row, _ in pairs], [name for _, name in pairs]


def in_process(runtime, items, batches: list[int], rounds: int = 5) -> dict[int, float]:
    """Sequences/s of mixed batches at each batch size (median of ``rounds``), cut into forwards
    by length as the service's batcher cuts them."""
    from bedside.adapters.batch import route

    from ..batcher import chunks

    rows, names = encoded(runtime, items)
    out = {}
    with torch.inference_mode():
        for batch in batches:
            picked = [i % len(rows) for i in range(batch)]
            forwards = [
                route([rows[picked[i]] for i in index], [names[picked[i]] for i in index])
                for index in chunks(
                    [len(rows[j]) for j in picked], runtime.settings.max_batch_rows, runtime.settings.max_padding
                )
            ]

            def run() -> None:
                for forward in forwards:
                    runtime.backend.run(forward)

            run()  # warm-up
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            out[batch] = batch / statistics.median(times)
    return out


def bare_rate(encoder, rows, batches: list[int], rounds: int = 5) -> dict[int, float]:
    """Sequences/s of the bare base encoder (torch eager, no adapter, no head) on the same token
    rows at each batch size: the ceiling any torch serving of these notes has on this machine."""
    out = {}
    with torch.inference_mode():
        for batch in batches:
            chunk = sorted((rows[i % len(rows)] for i in range(batch)), key=len)
            ids, mask = (torch.from_numpy(a) for a in pad_rows(chunk))
            encoder(input_ids=ids, attention_mask=mask)  # warm-up
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                encoder(input_ids=ids, attention_mask=mask)
                times.append(time.perf_counter() - start)
            out[batch] = batch / statistics.median(times)
    return out


async def closed_loop(url: str, items, concurrency: int, seconds: float, warmup: float = 3.0) -> dict:
    """``concurrency`` clients, each sending the next request as soon as its answer arrives.

    aiohttp rather than httpx: the load generator shares the machine with the server, and at
    ~100 requests/s on two cores httpx took 0.16–0.18 of a core against aiohttp's 0.04–0.05."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    cursor = [0]
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=60.0, connect=5.0)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        counting, deadline = start + warmup, start + warmup + seconds

        async def worker() -> None:
            while (now := time.monotonic()) < deadline:
                task, item = items[cursor[0] % len(items)]
                cursor[0] += 1
                t0 = time.perf_counter()
                status: int | str
                try:
                    async with session.post("/predict", json=body(task, item)) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
                if now >= counting:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        latencies.append(time.perf_counter() - t0)

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), warmup + seconds + 90)
        measured = time.monotonic() - counting
    return {
        "concurrency": concurrency,
        "rps": len(latencies) / measured,
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "answered": len(latencies),
        "seconds": measured,
    }


def run_server_load(
    store: Path, backbone: str, items, levels: list[int], seconds: float, log_file: Path, **server_settings
) -> list[dict]:
    from ..server import served

    with served(log_file, timeout=600, store=store, backbone=backbone, device="cpu", **server_settings) as (url, _):
        return [asyncio.run(closed_loop(url, items, c, seconds)) for c in levels]

"""Soak test: a real server under open-loop mixed load for minutes, with adapter swaps.

1. Capacity: closed-loop clients send mixed-task requests back to back for a short burst; the
   answered requests per second (after a warm-up) is the capacity. A second burst after the load
   shows whether the machine (shared with other jobs) changed meanwhile.
2. Load: an open-loop client sends requests at ``rate_fraction`` x capacity (Poisson arrivals,
   mixed tasks) for the given time; a request never waits for another, and at most
   ``max_inflight`` are outstanding (beyond that an arrival is counted as ``dropped``, not sent).
3. Every ``swap_every`` seconds another version of ``swap_task`` is activated in the store (the
   registry, as another process would); the server picks it up by polling.

Per window: requests, errors (non-200, by status; ``connection``/``timeout`` when no answer),
p50/p99 latency, the server's RSS (the whole process tree) and the machine's 1-minute load average
(other jobs on a shared machine show there). Only loopback traffic; every loop
ends by a deadline.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from .workload import TASKS

# Short clinical snippets, one per line (the soak measures churn, not long notes).
TEXTS = """\
septic shock , intubated in the icu
routine follow up , stable
chest pain treated with iv lasix
admitted for surgery and rehab placement
fever and cough , ct scan showed pneumonia
acute kidney failure , creatinine worsened after vancomycin
denies chest pain
heart failure improved with lasix and metoprolol""".splitlines()
REL_ITEMS = [
    {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}},
    {"text": "aspirin was given for chest pain", "head": {"start": 0, "end": 7}, "tail": {"start": 22, "end": 32}},
    {"text": "ct scan showed pneumonia", "head": {"start": 0, "end": 7}, "tail": {"start": 15, "end": 24}},
]


@dataclass
class Plan:
    seconds: float = 600.0
    rate_fraction: float = 0.7
    swap_every: float = 60.0
    window_s: float = 10.0
    capacity_s: float = 20.0
    clients: int = 16  # closed-loop clients for the capacity burst
    swap_task: str = "length_of_stay"
    max_inflight: int = 256
    timeout_s: float = 30.0
    seed: int = 0


def request_body(rng: random.Random) -> tuple[str, dict]:
    task = rng.choice(TASKS)
    if task == "relations":
        return task, {"task": task, "items": rng.sample(REL_ITEMS, rng.randint(1, 2))}
    return task, {"task": task, "texts": rng.sample(TEXTS, rng.randint(1, 2))}


def ensure_versions(store: Path, task: str) -> list[str]:
    """The task's versions; with only one stored, push a copy of the active artifact as a new one:
    the same weights under another adapter name (identical bytes would be the same version)."""
    import json
    import shutil
    import tempfile

    from bedside.adapters.registry import Registry

    registry = Registry(store)
    versions = [v.version for v in registry.list(task)]
    if len(versions) < 2:
        active = registry.active(task)
        if active is None:
            raise ValueError(f"{task} has no active version in {store}")
        with tempfile.TemporaryDirectory(prefix="bedside-bench-copy-") as tmp:
            copy = Path(shutil.copytree(registry.version_path(task, active.version), Path(tmp) / "artifact"))
            for file in copy.iterdir():
                file.chmod(0o644)  # stored versions are read-only
            manifest = json.loads((copy / "manifest.json").read_text())
            manifest["name"] = f"{manifest['name']}-copy"[:128]
            (copy / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            registry.push(copy, task=task, actor="soak")
        versions = [v.version for v in registry.list(task)]
    return versions


def tree_rss(pid: int) -> float:
    """RSS of a process and all its descendants, in MB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


async def _send(client: httpx.AsyncClient, body: dict) -> tuple[int | str, float, str | None]:
    start = time.perf_counter()
    try:
        r = await client.post("/predict", json=body)
        version = r.json()["adapter"]["version"] if r.status_code == 200 else None
        return r.status_code, time.perf_counter() - start, version
    except httpx.TimeoutException:
        return "timeout", time.perf_counter() - start, None
    except httpx.HTTPError as exc:  # no answer: say which kind, for diagnosis
        return f"connection:{type(exc).__name__}", time.perf_counter() - start, None


async def measure_capacity(client: httpx.AsyncClient, plan: Plan) -> dict:
    """Closed loop: answered requests/s after a warm-up (a quarter of the burst, at most 5 s)."""
    rng = random.Random(plan.seed)
    start = time.monotonic()
    warm_end, deadline = start + min(5.0, plan.capacity_s / 4), start + plan.capacity_s
    counted, latencies = 0, []
    statuses: dict[int | str, int] = {}

    async def worker() -> None:
        nonlocal counted
        while time.monotonic() < deadline:
            status, latency, _ = await _send(client, request_body(rng)[1])
            if time.monotonic() >= warm_end:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    counted += 1
                    latencies.append(latency)

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(plan.clients))), plan.capacity_s + plan.timeout_s + 5
    )
    rps = counted / (deadline - warm_end)
    return {
        "capacity_rps": rps,
        "clients": plan.clients,
        "statuses": statuses,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }


async def run_load(url: str, server_pid: int, store: Path, plan: Plan, rate: float) -> dict:
    """The open-loop phase with swaps; returns the raw records, RSS samples and swaps."""
    from bedside.adapters.registry import Registry

    registry = Registry(store)  # no base loaded here: activation checks integrity; the server loads
    versions = ensure_versions(store, plan.swap_task)
    rng = random.Random(plan.seed + 1)
    records: list[tuple] = []
    rss, swaps, dropped = [(0.0, tree_rss(server_pid), os.getloadavg()[0])], [], [0]
    # Idle connections are dropped before the server's 5 s keep-alive timeout would close them:
    # otherwise a request can race the server's close and fail without ever reaching it.
    limits = httpx.Limits(max_connections=plan.max_inflight, max_keepalive_connections=64, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=url, timeout=httpx.Timeout(plan.timeout_s, connect=5.0), limits=limits
    ) as client:
        t0 = time.monotonic()
        end = t0 + plan.seconds

        async def one(task: str, body: dict, sent: float) -> None:
            try:
                status, _, version = await _send(client, body)
            except asyncio.CancelledError:  # still unanswered when the run ended
                records.append((sent, task, "unfinished", float("nan"), None))
                raise
            # from the scheduled arrival, so a client running late cannot hide queueing
            records.append((sent, task, status, time.monotonic() - t0 - sent, version))

        async def arrivals() -> None:
            pending: set[asyncio.Task] = set()
            next_at = t0
            while (next_at := next_at + rng.expovariate(rate)) < end:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                if len(pending) >= plan.max_inflight:
                    dropped[0] += 1
                    continue
                task, body = request_body(rng)
                job = asyncio.create_task(one(task, body, next_at - t0))
                pending.add(job)
                job.add_done_callback(pending.discard)
            if pending:
                _, late = await asyncio.wait(pending, timeout=plan.timeout_s + 5)
                for job in late:
                    job.cancel()
                await asyncio.gather(*late, return_exceptions=True)

        async def sampler() -> None:
            k = 1
            while (at := t0 + k * plan.window_s) <= end + 0.01:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                rss.append((at - t0, await asyncio.to_thread(tree_rss, server_pid), os.getloadavg()[0]))
                k += 1

        async def swapper() -> None:
            k = 1
            while (at := t0 + k * plan.swap_every) < end - 1.0:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                current = registry.show(plan.swap_task).version
                target = versions[(versions.index(current) + 1) % len(versions)] if current in versions else versions[0]
                began = time.monotonic()
                await asyncio.to_thread(registry.activate, plan.swap_task, target, "soak")
                seen = None
                while seen is None and time.monotonic() < min(end, began + 30):
                    try:
                        status = (await client.get("/status")).json()["tasks"][plan.swap_task]
                    except (httpx.HTTPError, ValueError, KeyError):
                        status = {}
                    if status.get("version") == target:
                        seen = time.monotonic() - began
                    else:
                        await asyncio.sleep(0.1)
                swaps.append({"t": began - t0, "version": target, "picked_up_s": seen})
                k += 1

        await asyncio.wait_for(asyncio.gather(arrivals(), sampler(), swapper()), plan.seconds + plan.timeout_s + 30)
    return {"records": records, "rss": rss, "swaps": swaps, "dropped": dropped[0], "versions": versions}


def windows(records: list, rss: list, plan: Plan) -> list[dict]:
    n = max(1, math.ceil(plan.seconds / plan.window_s - 1e-9))
    rows = []
    for w in range(n):
        lo, hi = w * plan.window_s, (w + 1) * plan.window_s
        sub = [r for r in records if lo <= r[0] < hi]
        errors: dict[str, int] = {}
        for r in sub:
            if r[2] != 200:
                errors[str(r[2])] = errors.get(str(r[2]), 0) + 1
        lat = [r[3] for r in sub if isinstance(r[2], int)]
        after = [(mb, load) for t, mb, load in rss if t >= hi - 1e-6]
        rows.append(
            {
                "window": w,
                "t_end_s": hi,
                "requests": len(sub),
                "errors": sum(errors.values()),
                "errors_by_status": errors,
                "p50_ms": _pct(lat, 50),
                "p99_ms": _pct(lat, 99),
                "rss_mb": after[0][0] if after else float("nan"),
                "load_1m": after[0][1] if after else float("nan"),
            }
        )
    return rows


def summarise(capacity: dict, rate: float, load: dict, rows: list[dict], plan: Plan) -> dict:
    records = load["records"]
    errors: dict[str, int] = {}
    for r in records:
        if r[2] != 200:
            errors[str(r[2])] = errors.get(str(r[2]), 0) + 1
    first, last = rows[0], rows[-1]
    swap_versions = sorted({r[4] for r in records if r[1] == plan.swap_task and r[4]})
    return {
        "plan": asdict(plan),
        "capacity": capacity,
        "capacity_after": load["capacity_after"],
        "target_rps": rate,
        "achieved_rps": len(records) / plan.seconds,
        "requests": len(records),
        "dropped": load["dropped"],
        "errors": sum(errors.values()),
        "error_pct": 100 * sum(errors.values()) / max(1, len(records)),
        "errors_by_status": errors,
        "server_errors": sum(v for k, v in errors.items() if not k.isdigit() or int(k) >= 500),
        "p50_ms_first": first["p50_ms"],
        "p50_ms_last": last["p50_ms"],
        "p99_ms_first": first["p99_ms"],
        "p99_ms_last": last["p99_ms"],
        "p99_drift_ms": last["p99_ms"] - first["p99_ms"],
        "p99_max_ms": max(r["p99_ms"] for r in rows),
        "rss_mb_start": load["rss"][0][1],
        "rss_mb_first": first["rss_mb"],
        "rss_mb_last": last["rss_mb"],
        "rss_drift_mb": last["rss_mb"] - first["rss_mb"],
        "rss_mb_max": max(mb for _, mb, _ in load["rss"]),
        "swaps": load["swaps"],
        "swap_task_versions": load["versions"],
        "swap_versions_answered": swap_versions,
    }


def soak(
    store: Path, backbone: str, plan: Plan, log_file: Path, device: str = "auto", **server_settings
) -> tuple[dict, list[dict]]:
    """Start a real server on ``store``, measure capacity, run the load; return (summary, windows)."""
    from bedside.service.server import served

    with served(log_file, store=store, backbone=backbone, device=device, **server_settings) as (url, process):
        capacity = asyncio.run(_capacity(url, plan))
        rate = plan.rate_fraction * capacity["capacity_rps"]
        load = asyncio.run(run_load(url, process.pid, store, plan, rate))
        load["capacity_after"] = asyncio.run(_capacity(url, plan))  # the machine may have changed meanwhile
    rows = windows(load["records"], load["rss"], plan)
    return summarise(capacity, rate, load, rows, plan), rows


async def _capacity(url: str, plan: Plan) -> dict:
    limits = httpx.Limits(max_connections=plan.clients, max_keepalive_connections=plan.clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=url, timeout=httpx.Timeout(plan.timeout_s, connect=5.0), limits=limits
    ) as client:
        return await measure_capacity(client, plan)


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile in ms (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

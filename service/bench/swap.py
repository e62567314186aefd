"""Swap benchmark: activation (admin API) to the first answer from the new version, under load.

A real server serves mixed closed-loop load; a probe loop asks the swapped task over and over.
Two ways to reach a version, both with ``resident_cap`` 0 (retired versions are unloaded):

- ``stored``: each swap activates the other of two stored versions through
  ``POST /admin/adapters/{task}/{v}/activate``: the registry's checks, the version loaded and
  checked on the served model, the flip. The cold path.
- ``uploaded``: each swap first uploads the artifact as a new version (``POST /admin/adapters/{task}``,
  which checks and stages it on the served model), then activates it: the path a data scientist
  takes with the service's API.

The probe's own latency outside swaps is recorded too: a first answer cannot come sooner than
one request takes under the same load.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from .soak import _pct, ensure_versions
from .workload import body, requests

ADMIN_TOKEN = "bench-admin-token"
MODES = ("stored", "uploaded")


async def _swaps(
    url: str,
    task: str,
    versions: list[str],
    swaps: int,
    clients: int,
    pause: float,
    words: int,
    mode: str = "stored",
    upload_dir: Path | None = None,
) -> dict:
    items = requests(64, words=words)
    probe_item = next(item for t, item in items if t == task)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    statuses: dict[int | str, int] = {}
    events, probes = [], []  # probes: (start, end) of each answered probe request
    stop = asyncio.Event()
    latest: dict[str, Any] = {"version": None, "at": 0.0}
    stored = {p.name: p.read_bytes() for p in sorted(upload_dir.iterdir())} if upload_dir else {}

    def files(k: int) -> list:
        """The artifact's files, its manifest renamed per swap: identical bytes would be the stored version."""
        manifest = json.loads(stored["manifest.json"])
        renamed = {**stored, "manifest.json": json.dumps({**manifest, "name": f"{manifest['name']}-u{k}"}).encode()}
        return [("files", (name, data, "application/octet-stream")) for name, data in renamed.items()]

    limits = httpx.Limits(max_connections=clients + 4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60.0, connect=5.0), limits=limits) as client:

        async def load(k: int) -> None:
            i = k
            while not stop.is_set():
                t, item = items[i % len(items)]
                i += clients
                status: int | str
                try:
                    status = (await client.post("/predict", json=body(t, item))).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1

        async def probe() -> None:
            while not stop.is_set():
                sent = time.perf_counter()
                status: int | str
                try:
                    r = await client.post("/predict", json=body(task, probe_item))
                    status = r.status_code
                    if status == 200:
                        latest.update(version=r.json()["adapter"]["version"], at=time.perf_counter())
                        probes.append((sent, latest["at"]))
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1

        async def swapper() -> None:
            await asyncio.sleep(2.0)
            for k in range(swaps):
                upload_ms = None
                if mode == "uploaded":
                    start = time.perf_counter()
                    r = await client.post(f"/admin/adapters/{task}", files=files(k), headers=headers)
                    upload_ms = 1000 * (time.perf_counter() - start)
                    if r.status_code != 200 or not r.json().get("check", {}).get("ok"):
                        raise RuntimeError(f"upload failed: {r.status_code} {r.text[:300]}")
                    target = r.json()["version"]["version"]
                    await asyncio.sleep(pause / 2)
                else:
                    target = versions[(k + 1) % len(versions)]
                start = time.perf_counter()
                r = await client.post(f"/admin/adapters/{task}/{target}/activate", headers=headers)
                returned = time.perf_counter()
                while not (latest["version"] == target and latest["at"] > start) and time.perf_counter() - start < 30:
                    await asyncio.sleep(0.001)
                first = latest["at"] - start if latest["version"] == target else float("nan")
                events.append(
                    {
                        "swap": k + 1,
                        "version": target,
                        "status": r.status_code,
                        "upload_ms": upload_ms,
                        "activate_call_ms": 1000 * (returned - start),
                        "first_answer_ms": 1000 * first,
                        "first_answer_after_call_ms": 1000 * (latest["at"] - returned),
                        "window": (start, latest["at"]),
                    }
                )
                await asyncio.sleep(pause)
            stop.set()

        await asyncio.wait_for(
            asyncio.gather(swapper(), probe(), *(load(k) for k in range(clients))), swaps * (pause + 35) + 60
        )
    # Probe requests that overlapped no swap: what one request takes under this load.
    quiet = [
        end - sent
        for sent, end in probes
        if not any(sent < w_end and end > w_start for w_start, w_end in (e["window"] for e in events))
    ]
    for e in events:
        del e["window"]
    return {"events": events, "statuses": statuses, "probe_s": quiet}


def bench_swap(
    store: Path,
    backbone: str,
    task: str = "mortality",
    swaps: int = 10,
    clients: int = 4,
    pause: float = 1.0,
    log_file: Path | None = None,
    words: int = 64,
    mode: str = "stored",
    **server_settings,
) -> tuple[list[dict], dict]:
    from bedside.adapters.registry import Registry

    from ..server import served

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    versions = ensure_versions(store, task)[-2:]
    registry = Registry(store)
    upload_dir = registry.version_path(task, registry.show(task).version) if mode == "uploaded" else None
    settings = dict(store=store, backbone=backbone, device="cpu", admin_tokens=ADMIN_TOKEN, resident_cap=0)
    with served(log_file, timeout=600, **settings, **server_settings) as (url, _):
        result = asyncio.run(_swaps(url, task, versions, swaps, clients, pause, words, mode, upload_dir))
    events = result["events"]
    firsts = [e["first_answer_ms"] for e in events]
    failed = sum(v for k, v in result["statuses"].items() if k != 200)
    probe = result["probe_s"]
    summary = {
        "task": task,
        "mode": mode,
        "clients": clients,
        "swaps": len(events),
        "swaps_ok": sum(e["status"] == 200 for e in events),
        "first_answer_ms_p50": _pct([f / 1000 for f in firsts], 50),
        "first_answer_ms_max": max(firsts),
        "activate_call_ms_p50": _pct([e["activate_call_ms"] / 1000 for e in events], 50),
        "probe_request_ms_p50_outside_swaps": _pct(probe, 50) if probe else None,
        "requests": sum(result["statuses"].values()),
        "failed_requests": failed,
        "statuses": {str(k): v for k, v in result["statuses"].items()},
    }
    if mode == "uploaded":
        summary["upload_ms_p50"] = _pct([e["upload_ms"] / 1000 for e in events], 50)
    return events, summary

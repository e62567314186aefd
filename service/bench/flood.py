"""``bedside bench flood``: health checks and normal requests while clients flood the server with
over-long texts it must refuse.

Flooding clients post ~100 KB texts back to back, each refused for another reason: too many words
(413 before tokenising), one endless word (422 mostly unknown, after tokenising) and too many
tokens (413, after tokenising). Meanwhile one prober reads ``/livez`` every 20 ms and one client
sends normal requests back to back. The probes run alone before and after the flood as well:
the unloaded figure is their mean, measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

from .soak import _pct
from .workload import body, requests

FLOODS = {  # ~100 KB each; what the service answers without a forward
    "words": {"task": "ner", "texts": ["!?" * 50_000]},  # 100,000 words: over the word cap
    "unknown": {"task": "mortality", "texts": ["1" * 100_000]},  # one word, one [UNK]: mostly unknown
    "tokens": {"task": "ner", "texts": ["qzx " * 25_000]},  # 75,000 word pieces: over the token cap
}
LIVEZ_EVERY_S = 0.02


@dataclass
class Probes:
    livez: list[float] = field(default_factory=list)
    predict: list[float] = field(default_factory=list)
    flood: list[float] = field(default_factory=list)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, who: str, status: int | str) -> None:
        counts = self.statuses.setdefault(who, {})
        counts[str(status)] = counts.get(str(status), 0) + 1


async def _timed(session: aiohttp.ClientSession, method: str, path: str, payload: dict | None = None):
    start = time.perf_counter()
    try:
        async with session.request(method, path, json=payload) as response:
            await response.read()
            status: int | str = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        status = type(exc).__name__
    return status, time.perf_counter() - start


async def phase(url: str, seconds: float, flooders: int, seed: int = 0) -> Probes:
    """Probe for ``seconds`` with ``flooders`` clients posting over-long texts meanwhile."""
    probes, normal = Probes(), requests(64, seed=seed)
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=60.0, connect=5.0)
    connector = aiohttp.TCPConnector(limit=flooders + 2)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def livez() -> None:
            while time.monotonic() < deadline:
                status, took = await _timed(session, "GET", "/livez")
                probes.count("livez", status)
                if status == 200:
                    probes.livez.append(took)
                await asyncio.sleep(max(0.0, LIVEZ_EVERY_S - took))

        async def predict() -> None:
            i = 0
            while time.monotonic() < deadline:
                status, took = await _timed(session, "POST", "/predict", body(*normal[i % len(normal)]))
                probes.count("predict", status)
                if status == 200:
                    probes.predict.append(took)
                i += 1

        async def flood(n: int) -> None:
            kinds = list(FLOODS)
            i = n
            while time.monotonic() < deadline:
                kind = kinds[i % len(kinds)]
                status, took = await _timed(session, "POST", "/predict", FLOODS[kind])
                probes.count(f"flood:{kind}", status)
                probes.flood.append(took)
                i += 1

        await asyncio.gather(livez(), predict(), *(flood(n) for n in range(flooders)))
    return probes


def summary_of(name: str, probes: Probes) -> dict:
    return {
        "phase": name,
        "livez_p50_ms": _pct(probes.livez, 50),
        "livez_p99_ms": _pct(probes.livez, 99),
        "predict_p50_ms": _pct(probes.predict, 50),
        "predict_p99_ms": _pct(probes.predict, 99),
        "predict_answered": len(probes.predict),
        "flood_requests": len(probes.flood),
        "flood_p50_ms": _pct(probes.flood, 50),
        "statuses": probes.statuses,
        "_raw": {"livez": probes.livez, "predict": probes.predict},
    }


def run(url: str, seconds: float, flooders: int) -> tuple[list[dict], dict]:
    """Alone, flooded, alone again: rows per phase and the same-run ratios."""
    asyncio.run(phase(url, min(3.0, seconds), 0))  # warm-up
    rows = [
        summary_of("alone (before)", asyncio.run(phase(url, seconds, 0))),
        summary_of(f"{flooders} clients flooding", asyncio.run(phase(url, seconds, flooders))),
        summary_of("alone (after)", asyncio.run(phase(url, seconds, 0))),
    ]
    alone = [rows[0], rows[2]]
    flooded = rows[1]
    unloaded = {k: statistics.mean(r[k] for r in alone) for k in ("predict_p50_ms", "predict_p99_ms")}
    unexpected = {
        who: counts
        for who, counts in flooded["statuses"].items()
        if who.startswith("flood:") and set(counts) - {"413", "422"}
    }
    summary = {
        "flooders": flooders,
        "seconds_per_phase": seconds,
        "livez_p99_ms_flooded": flooded["livez_p99_ms"],
        "livez_target_ms": 50.0,
        "predict_p50_over_unloaded": flooded["predict_p50_ms"] / unloaded["predict_p50_ms"],
        "predict_p99_over_unloaded": flooded["predict_p99_ms"] / unloaded["predict_p99_ms"],
        "predict_target_ratio": 2.0,
        "flood_statuses": {k: v for k, v in flooded["statuses"].items() if k.startswith("flood:")},
        "flood_answers_other_than_413_422": unexpected,
        "probe_errors": {r["phase"]: _errors(r["statuses"]) for r in rows},
    }
    return rows, summary


def _errors(statuses: dict[str, dict[str, int]]) -> dict:
    """The probes' answers other than 200 (the flood's own are expected to be 413/422)."""
    return {who: c for who, c in statuses.items() if not who.startswith("flood:") and set(c) - {"200"}}


def plot(rows: list[dict], raw: list[dict], path) -> None:
    """Latency CDFs of /livez and a normal predict, alone and flooded."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, probe in zip(axes, ("livez", "predict")):
        for row, samples in zip(rows, raw):
            values = sorted(1000 * s for s in samples[probe])
            if values:
                ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=row["phase"])
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("share of requests answered within")
        ax.set_title("GET /livez" if probe == "livez" else "normal POST /predict")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""``bedside bench notes``: whole notes through a real server at several concurrencies, against
the bare encoder on the same rows (the ceiling) and a transformers pipeline per task (what a
hospital would write), plus a coverage pass that sends every note once to every task.

The bare and pipeline costs are measured before and after the server's load and averaged (the
machine drifts), and compared on the notes the service answered: the bare encoder's seconds per
forwarded row token, the pipeline's seconds per note token of each task, so a mix the service
answers (a 429 sheds heavier notes more often) is compared with the same mix. Latency against
note length is fitted with a line per task and concurrency.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np

from .notes_workload import NoteRequest
from .soak import _pct


async def closed_loop(url: str, requests: list[NoteRequest], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` clients sending whole notes back to back; per answered note its length and latency."""
    samples: list[tuple[int, float, str, int]] = []  # note tokens, seconds, task, row tokens
    statuses: dict[str, int] = {}
    cursor = [0]
    timeout = aiohttp.ClientTimeout(total=120.0, connect=5.0)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:
        start = time.monotonic()
        counting, deadline = start + warmup, start + warmup + seconds

        async def client() -> None:
            while (now := time.monotonic()) < deadline:
                request = requests[cursor[0] % len(requests)]
                cursor[0] += 1
                status, took = await _post(session, request)
                if now >= counting:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        samples.append((request.tokens, took, request.task, request.row_tokens))

        await asyncio.gather(*(client() for _ in range(clients)))
        measured = time.monotonic() - counting
    latencies = [s[1] for s in samples]
    return {
        "clients": clients,
        "notes_per_s": len(samples) / measured,
        "tokens_per_s": sum(s[0] for s in samples) / measured,
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "answered": len(samples),
        "seconds": measured,
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "fits": {task: fit([s for s in samples if s[2] == task]) for task in sorted({s[2] for s in samples})},
        "_samples": samples,
    }


async def _post(session: aiohttp.ClientSession, request: NoteRequest) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        async with session.post(request.path, json=request.body()) as response:
            await response.read()
            return str(response.status), time.perf_counter() - t0
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__, time.perf_counter() - t0


def fit(samples: list[tuple]) -> dict:
    """latency (ms) = intercept + slope × note tokens, least squares, with R² (one task's notes:
    tasks read a note differently, so one line over all of them would fit none)."""
    if len({s[0] for s in samples}) < 3:  # a line needs notes of different lengths
        return {"fit_ms_per_1k_tokens": float("nan"), "fit_intercept_ms": float("nan"), "fit_r2": float("nan")}
    x = np.array([s[0] for s in samples], dtype=float)
    y = np.array([1000 * s[1] for s in samples])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - float((residual**2).sum()) / float(((y - y.mean()) ** 2).sum() or 1.0)
    return {"fit_ms_per_1k_tokens": 1000 * float(slope), "fit_intercept_ms": float(intercept), "fit_r2": r2}


RETRIES = 5


async def coverage(url: str, notes: list[str], clients: int, limit_s: float) -> dict:
    """Every note once through /predict for each task and /extract (relations: the note's first
    candidate pair from the /extract answer); errors (final answers other than 200) and answers
    slower than ``limit_s`` (the last attempt's time)."""
    statuses: dict[str, dict[str, int]] = {}
    slow: dict[str, int] = {}
    retried: dict[str, int] = {}
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for note in notes:
        queue.put_nowait(note)
    timeout = aiohttp.ClientTimeout(total=limit_s + 30, connect=5.0)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:

        async def send(name: str, path: str, body: dict) -> dict | None:
            """One answer, as a careful client gets it: a 429 is retried after its Retry-After."""
            for attempt in range(RETRIES + 1):
                t0 = time.perf_counter()
                try:
                    async with session.post(path, json=body) as response:
                        answer = await response.json() if response.status == 200 else None
                        status, wait = str(response.status), float(response.headers.get("Retry-After", "1"))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    answer, status, wait = None, type(exc).__name__, 0.0
                if status != "429" or attempt == RETRIES:
                    break
                retried[name] = retried.get(name, 0) + 1
                await asyncio.sleep(min(wait, 5.0))
            took = time.perf_counter() - t0
            latencies.append(took)
            counts = statuses.setdefault(name, {})
            counts[status] = counts.get(status, 0) + 1
            if took > limit_s:
                slow[name] = slow.get(name, 0) + 1
            return answer

        async def client() -> None:
            while not queue.empty():
                note = queue.get_nowait()
                for task in ("mortality", "length_of_stay", "ner"):
                    await send(task, "/predict", {"task": task, "texts": [note]})
                answer = await send("extract", "/extract", {"text": note})
                pair = _first_pair(answer, note)
                if pair is not None:
                    await send("relations", "/predict", {"task": "relations", "items": [{"text": note, **pair}]})

        await asyncio.gather(*(client() for _ in range(clients)))
    errors = {name: sum(n for s, n in counts.items() if s != "200") for name, counts in statuses.items()}
    return {
        "texts": len(notes),
        "requests": sum(sum(c.values()) for c in statuses.values()),
        "statuses": statuses,
        "errors": sum(errors.values()),
        "errors_by_endpoint": errors,
        "retried_after_429": retried,
        "over_time_limit": sum(slow.values()),
        "time_limit_s": limit_s,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "max_ms": 1000 * max(latencies, default=0.0),
    }


def _first_pair(answer: dict | None, note: str) -> dict | None:
    """The note's first relation found, else its first candidate pair (None: no candidates)."""
    from bedside.adapters.kinds import note_pairs

    if not answer:
        return None
    entities = answer["entities"]
    pairs = [(r["head"], r["tail"]) for r in answer["relations"][:1]] or note_pairs(note, entities)[:1]
    if not pairs:
        return None
    head, tail = entities[pairs[0][0]], entities[pairs[0][1]]
    return {"head": {"start": head["start"], "end": head["end"]}, "tail": {"start": tail["start"], "end": tail["end"]}}


def plot(results: list[dict], path, title: str) -> None:
    """Latency against note length, one panel per task, a colour and a fitted line per concurrency."""
    import matplotlib.pyplot as plt

    tasks = sorted({s[2] for row in results for s in row["_samples"]})
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4.5 * max(1, len(tasks)), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for row in results:
            samples = [s for s in row["_samples"] if s[2] == task]
            if not samples:
                continue
            x = [s[0] for s in samples]
            y = [1000 * s[1] for s in samples]
            (dots,) = ax.plot(x, y, ".", alpha=0.35, markersize=4, label=f"{row['clients']} clients")
            line_fit = row["fits"][task]
            if np.isfinite(line_fit["fit_ms_per_1k_tokens"]):
                span = np.array([min(x), max(x)])
                line = line_fit["fit_intercept_ms"] + line_fit["fit_ms_per_1k_tokens"] / 1000 * span
                label = f"{line_fit['fit_ms_per_1k_tokens']:.0f} ms/1k tok, R² {line_fit['fit_r2']:.2f}"
                ax.plot(span, line, "-", color=dots.get_color(), label=label)
        ax.set_title(task)
        ax.set_xlabel("note length (word pieces)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("latency (ms)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

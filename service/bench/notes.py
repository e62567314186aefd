"""``bedside bench notes``: whole notes through a real server at several concurrencies, against
the bare encoder on the same rows (the ceiling) and a transformers pipeline per task (what a
hospital would write), plus a coverage pass that sends every note once to every task.

The bare encoder's cost is measured right before and right after each load level (a quarter
of the notes, the same mix; the machine drifts) and the pipeline's before and after all of
them, and both are compared on the notes the service answered: the bare encoder's seconds per
forwarded row token, the pipeline's seconds per note token of each task, so a mix the service
answers (a 429 sheds heavier notes more often) is compared with the same mix. Latency against
note length is fitted with a line per task and concurrency.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import numpy as np

from .notes_workload import NoteRequest
from .soak import _pct


async def closed_loop(url: str, requests: list[NoteRequest], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` clients sending whole notes back to back, as a careful client does: a 429 is
    sent again after its Retry-After. Per answered note its length and latency (from the first
    try, waits included).

    A note counts when its answer arrives in the measured window, whenever it was sent: in a
    closed loop at steady state answers arrive at the rate work is done. Counting only notes
    both sent and answered inside the window drops the last latency's worth of work (at 32
    clients, notes of 7 to 15 s in a 60 s window: a sixth of it, the longest notes most)."""
    samples: list[tuple[int, float, str, int]] = []  # note tokens, seconds, task, row tokens
    statuses: dict[str, int] = {}
    retried = [0]
    cursor = [0]
    timeout = aiohttp.ClientTimeout(total=120.0, connect=5.0)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:
        start = time.monotonic()
        counting, deadline = start + warmup, start + warmup + seconds

        async def client() -> None:
            while time.monotonic() < deadline:
                request = requests[cursor[0] % len(requests)]
                cursor[0] += 1
                sent = await send(session, request.path, request.body(), until=deadline, parse=False)
                if answered_in_window(time.monotonic(), counting, deadline) and not sent.cut:
                    statuses[sent.status] = statuses.get(sent.status, 0) + 1
                    retried[0] += sent.retries
                    if sent.status == "200":
                        samples.append((request.tokens, sent.seconds, request.task, request.row_tokens))

        await asyncio.gather(*(client() for _ in range(clients)))
        measured = deadline - counting
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
        "retried_after_429": retried[0],
        "statuses": statuses,
        "fits": {task: fit([s for s in samples if s[2] == task]) for task in sorted({s[2] for s in samples})},
        "_samples": samples,
    }


def answered_in_window(answered_at: float, counting: float, deadline: float) -> bool:
    """Whether an answer counts in the measured window: by when it arrived, not when it was sent."""
    return counting <= answered_at <= deadline


@dataclass
class Sent:
    status: str  # the last try's HTTP status, or the client error's name
    seconds: float  # from the first try to the last answer, Retry-After waits included
    last_seconds: float  # the last try alone: the time the service took once it took the request
    retries: int
    answer: dict | None  # the JSON of a 200
    cut: bool = False  # a 429 whose next try would have come after ``until``: unfinished, not failed


RETRY_WAIT_CAP_S = 5.0


async def send(
    session: aiohttp.ClientSession, path: str, body: dict, retries: int = 1000, until: float = 0.0, parse: bool = True
) -> Sent:
    """One answer, as a careful client gets it: a 429 is sent again after its Retry-After (with a
    little jitter, so clients told the same wait do not return together), at most ``retries``
    times and not past ``until`` (monotonic time; 0: no end). ``parse``: read a 200's JSON (a load
    client skips it: parsing answers of hundreds of entities takes the cores the server is
    measured on)."""
    t0, tries = time.perf_counter(), 0
    while True:
        t_try = time.perf_counter()
        try:
            async with session.post(path, json=body) as response:
                raw = await response.read()
                answer = json.loads(raw) if response.status == 200 and parse else None
                status, wait = str(response.status), float(response.headers.get("Retry-After", "1"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            answer, status, wait = None, type(exc).__name__, 0.0
        wait = min(wait, RETRY_WAIT_CAP_S) * random.uniform(0.5, 1.0)
        cut = bool(until) and status == "429" and time.monotonic() + wait > until
        if status != "429" or tries == retries or cut:
            now = time.perf_counter()
            return Sent(status, now - t0, now - t_try, tries, answer, cut)
        tries += 1
        await asyncio.sleep(wait)


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


RETRIES = 60  # a careful client's patience: about a minute of Retry-After waits


async def coverage(
    url: str, notes: list[str], clients: int, limit_s: float, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Every note once through /predict for each task and /extract (relations: the note's first
    candidate pair from the /extract answer); errors (final answers other than 200, a 429 being
    sent again after its Retry-After up to RETRIES times) and answers slower than ``limit_s``
    (the try the service took: its own deadline's measure; waits after 429s are reported apart).
    ``progress(done, total)`` after each note."""
    statuses: dict[str, dict[str, int]] = {}
    slow: dict[str, int] = {}
    retried: dict[str, int] = {}
    latencies: list[float] = []
    waited: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for note in notes:
        queue.put_nowait(note)
    timeout = aiohttp.ClientTimeout(total=limit_s + 30, connect=5.0)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:
        done = [0]

        async def count(name: str, path: str, body: dict) -> dict | None:
            sent = await send(session, path, body, retries=RETRIES)
            retried[name] = retried.get(name, 0) + sent.retries
            latencies.append(sent.last_seconds)
            waited.append(sent.seconds)
            counts = statuses.setdefault(name, {})
            counts[sent.status] = counts.get(sent.status, 0) + 1
            if sent.last_seconds > limit_s:
                slow[name] = slow.get(name, 0) + 1
            return sent.answer

        async def client() -> None:
            while not queue.empty():
                note = queue.get_nowait()
                for task in ("mortality", "length_of_stay", "ner"):
                    await count(task, "/predict", {"task": task, "texts": [note]})
                answer = await count("extract", "/extract", {"text": note})
                pair = _first_pair(answer, note)
                if pair is not None:
                    await count("relations", "/predict", {"task": "relations", "items": [{"text": note, **pair}]})
                done[0] += 1
                if progress is not None:
                    progress(done[0], len(notes))

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
        "over_time_limit_by_endpoint": slow,
        "time_limit_s": limit_s,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "max_ms": 1000 * max(latencies, default=0.0),
        "with_retry_waits_p50_ms": _pct(waited, 50),
        "with_retry_waits_max_ms": 1000 * max(waited, default=0.0),
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

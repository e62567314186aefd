"""The whole-note benchmark's clients behave as careful clients: a 429 is sent again after its
Retry-After, and the wait counts in the note's latency (a small aiohttp server, no model)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from bedside.service.bench import notes as bench
from bedside.service.bench.notes_workload import NoteRequest


class Busy:
    """Answers 429 (Retry-After 0.05 s) to the first ``refusals`` tries of each text, then 200."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.tries = refusals, {}

    async def handle(self, request: web.Request) -> web.Response:
        text = (await request.json())["texts"][0]
        self.tries[text] = self.tries.get(text, 0) + 1
        if self.tries[text] <= self.refusals:
            return web.json_response({"error": "overloaded"}, status=429, headers={"Retry-After": "0.05"})
        return web.json_response({"results": [{"label": "ok"}]})


async def _serving(busy: Busy, body):
    app = web.Application()
    app.router.add_post("/predict", busy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_a_429_is_sent_again_after_its_retry_after_and_the_wait_counts():
    busy = Busy(refusals=2)

    async def body(url):
        async with aiohttp.ClientSession(url) as session:
            patient = await bench.send(session, "/predict", {"task": "t", "texts": ["a"]})
            impatient = await bench.send(session, "/predict", {"task": "t", "texts": ["b"]}, retries=1)
        return patient, impatient

    patient, impatient = asyncio.run(_serving(busy, body))
    assert patient.status == "200" and patient.retries == 2 and patient.answer == {"results": [{"label": "ok"}]}
    assert patient.seconds >= 2 * 0.025 and patient.last_seconds < patient.seconds  # two jittered waits of 0.05 s
    assert impatient.status == "429" and impatient.retries == 1 and impatient.answer is None
    assert busy.tries == {"a": 3, "b": 2}


def test_closed_loop_counts_answered_notes_and_the_retries_apart_from_errors():
    busy = Busy(refusals=1)
    requests = [NoteRequest("mortality", f"note {i}", tokens=10 + i) for i in range(1000)]  # none sent twice

    result = asyncio.run(_serving(busy, lambda url: bench.closed_loop(url, requests, 2, seconds=1.0, warmup=0.2)))
    assert result["errors"] == 0 and result["answered"] > 0
    assert result["retried_after_429"] >= result["answered"] - 2  # every note was refused once first
    assert result["statuses"] == {"200": result["answered"]}
    assert result["notes_per_s"] == result["answered"] / result["seconds"]


def test_a_note_counts_by_when_its_answer_arrives_not_when_it_was_sent():
    # sent in the warm-up or long before the end, answered inside the window: counted
    assert bench.answered_in_window(5.0, counting=5.0, deadline=65.0)
    assert bench.answered_in_window(64.9, counting=5.0, deadline=65.0)
    assert not bench.answered_in_window(4.9, counting=5.0, deadline=65.0)
    assert not bench.answered_in_window(65.1, counting=5.0, deadline=65.0)


class Slow:
    """Answers every note after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.seconds)
        return web.json_response({"results": [{"label": "ok"}]})


def test_closed_loop_counts_the_answers_of_notes_sent_before_the_window():
    # each answer takes 0.4 s; the window (0.5 s after a 0.2 s warm-up) has answers at 0.4
    # (sent in the warm-up) and none sent and answered inside it: all of them count.
    slow = Slow(0.4)
    requests = [NoteRequest("mortality", f"note {i}", tokens=10) for i in range(100)]
    result = asyncio.run(_serving(slow, lambda url: bench.closed_loop(url, requests, 3, seconds=0.5, warmup=0.2)))
    assert result["answered"] == 3 and result["errors"] == 0

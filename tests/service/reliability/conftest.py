"""Shared by the RELIABILITY.md tests (docs/reliability.md maps every row to its tests).

"Server up" (a normal predict of every task answers 200 with the same result as before) is
checked after each fault with :func:`assert_server_up`. Most tests share one in-process engine
(module scope, no store polling) and change only attributes through ``monkeypatch``; :func:`idle`
waits until the batcher is empty again, so no test leaves work behind for the next one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.helpers import active_store
from tests.service.conftest import build_client as build

CANARY = "PHI-CANARY-5e1d77"
TEXT = "septic shock , intubated in the icu"
REL_ITEM = {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}}
NORMAL = {
    "mortality": {"texts": [TEXT, "routine follow up , stable"]},
    "length_of_stay": {"texts": ["admitted for surgery and rehab placement"]},
    "ner": {"texts": ["chest pain treated with iv lasix"]},
    "relations": {"items": [REL_ITEM]},
}
ADMIN = {"Authorization": "Bearer admin-secret"}
JSON = {"Content-Type": "application/json"}


# -- helpers -------------------------------------------------------------------------------------------------
def push_all(store: Path, artifacts: dict, tasks=None) -> Path:
    return active_store(store, {t: p for t, p in artifacts.items() if tasks is None or t in tasks})


def predict(client, task: str, **kwargs):
    return client.post("/predict", json={"task": task, **(kwargs or NORMAL[task])})


def answers(client) -> dict:
    out = {}
    for task in NORMAL:
        r = predict(client, task)
        assert r.status_code == 200, (task, r.status_code, r.text)
        out[task] = r.json()["results"]
    return out


def same(a, b, tol: float = 1e-4) -> bool:
    """Results equal up to float noise (batch padding changes the last digits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol
    return a == b


def assert_server_up(client, before: dict) -> None:
    assert same(answers(client), before), "a normal predict changed after the fault"


def assert_clear(r, status, code: str | None = None) -> dict:
    """A JSON error with a stable code and a message; no traceback."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "message"} and body["error"] and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def leases(engine) -> int:
    return sum(resident.leases for resident in engine.runtime.residents.values())


def idle(engine, timeout: float = 10.0) -> None:
    """Wait until nothing is queued or running in the batcher (and no lease is held)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.batcher._queued_rows == 0 and engine.batcher._queue.empty() and leases(engine) == 0:
            with engine.runtime.lock:  # a running forward holds it
                return
        time.sleep(0.01)
    raise AssertionError(f"not idle: {engine.batcher._queued_rows} rows queued, {leases(engine)} leases")


def slow_forward(monkeypatch, engine, seconds: float, calls: list | None = None):
    """Make every encoder forward take ``seconds`` longer (the model itself is unchanged)."""
    run = engine.batcher.run

    def forward(batch):
        if calls is not None:
            calls.append(len(batch))
        time.sleep(seconds)
        return run(batch)

    monkeypatch.setattr(engine.batcher, "run", forward)


def in_threads(fn, args_list: list) -> list:
    results = [None] * len(args_list)

    def run(i, args):
        try:
            results[i] = fn(*args)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a request hung"
    return results


async def asgi(app, path: str, body: bytes) -> int:
    """One raw ASGI request (an exception leaving the app fails the test); the status sent."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent[0]["status"]


def timed_post(client, path: str, payload: dict, headers: dict | None = None):
    t0 = time.perf_counter()
    r = client.post(path, json=payload, headers=headers)
    return r, time.perf_counter() - t0


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="package")
def shared(tmp_path_factory, artifacts, served_folder):
    """(client, engine, answers before any fault) on a module-wide store (v1 active per task)."""
    store = push_all(tmp_path_factory.mktemp("reliability") / "store", artifacts[0])
    client, engine = build(store, served_folder)
    try:
        yield client, engine, answers(client)
    finally:
        engine.close()


@pytest.fixture()
def client(shared):
    return shared[0]


@pytest.fixture()
def engine(shared):
    yield shared[1]
    idle(shared[1])


@pytest.fixture()
def before(shared):
    return shared[2]

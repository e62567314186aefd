"""RELIABILITY.md rows on what a request may carry: empty, malformed, oversized, hostile or
abandoned input, overload, timeouts and the PHI canary (docs/reliability.md has the row map)."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from .conftest import (
    ADMIN,
    CANARY,
    JSON,
    REL_ITEM,
    TEXT,
    asgi,
    assert_clear,
    assert_server_up,
    idle,
    in_threads,
    leases,
    predict,
    same,
    slow_forward,
    timed_post,
)


# -- 1. empty input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        {"task": "mortality", "texts": [""]},
        {"task": "mortality", "texts": ["   \t\n  "]},
        {"task": "mortality", "texts": [TEXT, " "]},
        {"task": "mortality", "texts": []},
        {"task": "ner", "texts": ["\u3000\u2003"]},  # unicode spaces
        {"task": "ner", "texts": ["\x00\x01\u202e\u200b"]},  # nothing left once tokenised
        {"task": "mortality", "texts": ["\x00\u200b\u202e"]},
        {"task": "relations", "items": [{**REL_ITEM, "text": "  "}]},
    ],
)
def test_r01_empty_or_whitespace_text_is_refused_without_a_model_call(client, engine, monkeypatch, payload):
    submitted = []
    monkeypatch.setattr(engine.batcher, "submit", lambda *a, **k: submitted.append(a) or pytest.fail("model call"))
    assert_clear(client.post("/predict", json=payload), (400, 422))
    assert_clear(client.post("/extract", json={"text": "  \n "}), (400, 422))
    assert submitted == []


# -- 2. wrong types, missing and extra fields ----------------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        {"task": "mortality", "texts": CANARY},
        {"task": "mortality", "texts": [CANARY, 7]},
        {"task": "mortality", "texts": [[CANARY]]},
        {"task": "mortality", "texts": {CANARY: CANARY}},
        {"task": 7, "texts": [CANARY]},
        {"task": ["mortality"], "texts": [CANARY]},
        {"texts": [CANARY]},
        {"task": "mortality"},
        {"task": "mortality", "texts": [CANARY], "patient": CANARY},
        {"task": "mortality", "texts": [CANARY], CANARY: 1},
        {"task": "relations", "items": [{**REL_ITEM, "text": CANARY, CANARY: 1}]},
        {"task": "relations", "items": [{**REL_ITEM, "head": {"start": CANARY, "end": 2}}]},
        {"task": "relations", "items": [{"text": CANARY}]},
        {"task": "relations", "texts": [CANARY]},
        {"task": "mortality", "items": [{**REL_ITEM, "text": CANARY}]},
        [CANARY],
        CANARY,
        0,
    ],
)
def test_r02_wrong_types_missing_and_extra_fields_are_422_without_echo(client, engine, payload):
    r = client.post("/predict", json=payload)
    assert_clear(r, 422)
    assert CANARY not in r.text and CANARY not in str(r.headers)
    r = client.post("/extract", json=payload)  # none of these is an extract request either
    assert_clear(r, 422)
    assert CANARY not in r.text


def test_r02_query_parameters_are_validated_without_echo(client):
    r = client.post(f"/admin/adapters/mortality?activate={CANARY}", headers=ADMIN)
    assert_clear(r, 422, "invalid_request")
    assert CANARY not in r.text


# -- 3. over the token limit ---------------------------------------------------------------------------------
LONG = " ".join(["septic shock intubated"] * 40)  # 120 words, over the artifacts' 64 tokens
LONG_ITEM = {
    "text": LONG + " lasix was given for edema",
    "head": {"start": len(LONG) + 1, "end": len(LONG) + 6},
    "tail": {"start": len(LONG) + 21, "end": len(LONG) + 26},
}


def test_r03_whole_notes_are_answered_and_say_how(client, engine):
    r = predict(client, "mortality", texts=[TEXT, LONG])
    assert r.status_code == 200, r.text
    short, long = r.json()["results"]
    assert short["windows"] == 1 and short["strategy"] == "whole" and "tokens_not_read" not in short
    assert long["strategy"] == "truncate" and long["tokens_not_read"] > 0  # the adapter's stated strategy
    r = predict(client, "ner", texts=[LONG])
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["windows"] > 1 and result["strategy"] == "windows"
    assert all(LONG[e["start"] : e["end"]] == e["text"] for e in result["entities"])
    r = predict(client, "relations", items=[LONG_ITEM])
    assert r.status_code == 200 and r.json()["results"][0]["strategy"] == "local window", r.text
    r = client.post("/extract", json={"text": LONG})
    assert r.status_code == 200 and r.json()["note"]["windows"] > 1, r.text


def test_r03_over_the_request_caps_is_413_before_any_forward(client, engine, monkeypatch):
    monkeypatch.setattr(engine.batcher, "submit", lambda *a, **k: pytest.fail("a forward was asked for"))
    monkeypatch.setattr(engine, "limits", replace(engine.limits, max_tokens=50))
    for task, body in [("mortality", {"texts": [LONG]}), ("ner", {"texts": [LONG]}), ("ner", {"texts": [TEXT] * 10})]:
        error = assert_clear(predict(client, task, **body), 413, "too_large")
        assert "over 50 tokens" in error["message"]
    monkeypatch.setattr(engine.settings, "max_text_chars", 100)
    assert_clear(predict(client, "mortality", texts=[LONG]), 413, "too_large")
    assert_clear(client.post("/extract", json={"text": LONG}), 413, "too_large")


def test_d10_a_pair_whose_entities_cannot_share_a_row_is_422(client, engine):
    """D10: a relation is never scored with one of its entities cut away."""
    far = {"text": LONG_ITEM["text"], "head": {"start": 0, "end": 6}, "tail": LONG_ITEM["tail"]}
    assert_clear(predict(client, "relations", items=[far]), 422, "entities_too_far")


# -- 4. big bodies -------------------------------------------------------------------------------------------
@pytest.fixture()
def no_parsing(monkeypatch):
    from bedside.service import request_body as service_app

    def refuse(raw):
        pytest.fail("the body was parsed")

    monkeypatch.setattr(service_app, "parse_json", refuse)


@pytest.mark.parametrize("size", [(1 << 20) + 1, 10 << 20], ids=["1MB", "10MB"])
@pytest.mark.parametrize("path", ["/predict", "/extract"])
def test_r04_large_bodies_are_413_before_parsing(client, engine, no_parsing, size, path):
    # 1 MB: just over the default limit of 1 MiB (a body of 1,000,000 bytes is under it)
    payload = b'{"task": "mortality", "texts": ["' + b"a" * size + b'"]}'
    assert_clear(client.post(path, content=payload, headers=JSON), 413, "body_too_large")


def test_r04_chunked_body_without_length_is_413_while_streaming(client, engine, no_parsing, monkeypatch, before):
    sent = []

    def chunks():
        for _ in range(200):  # 20 MB if it were all read
            sent.append(1)
            yield b"a" * 100_000

    r = client.post("/predict", content=chunks(), headers=JSON)
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert_clear(r, 413, "body_too_large")
    monkeypatch.undo()  # parsing allowed again
    assert_server_up(client, before)


def test_r04_endless_stream_stops_being_read_after_the_limit(shared):
    """Raw ASGI, an endless body: the app stops reading just after the limit (memory is flat by design)."""
    from bedside.service.app import create_app

    _, engine, _ = shared
    app = create_app(engine.settings, lambda: engine)
    received, sent = [0], []

    async def receive():
        received[0] += 1
        return {"type": "http.request", "body": b"a" * 65536, "more_body": True}  # never ends

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert sent[0]["status"] == 413
    assert received[0] * 65536 <= engine.settings.max_body_bytes + 2 * 65536


def test_r04_memory_stays_flat_across_10mb_bodies(client, engine, no_parsing):
    import ctypes
    import gc

    import psutil

    process = psutil.Process()
    try:  # glibc raises its mmap threshold after big frees elsewhere in the suite (benchmarks free
        # large matrices); pin it so 10 MB buffers are mapped and unmapped, and RSS shows what is held
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
    big = b'{"task": "mortality", "texts": ["' + b"a" * (10 << 20) + b'"]}'

    def chunks():
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    def ten_bodies():
        for _ in range(5):
            assert client.post("/predict", content=big, headers=JSON).status_code == 413
            assert client.post("/predict", content=chunks(), headers=JSON).status_code == 413
        gc.collect()
        try:  # freed heap pages go back to the OS: RSS then shows what is still held
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    # The first round fills allocator pools (client and server share this process); flat
    # means a second round of 100 MB of traffic leaves memory where the first left it.
    ten_bodies()
    rss = process.memory_info().rss
    ten_bodies()
    grown = (process.memory_info().rss - rss) / 2**20
    assert grown < 25, f"RSS grew by {grown:.0f} MiB over ten more 10 MB bodies"


# -- 5. bytes that are not JSON text -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, code",
    [
        (b'{"task": "mortality", "texts": ["caf\xe9"]}', "invalid_encoding"),  # latin-1
        (b'\xff\xfe{\x00"\x00', "invalid_encoding"),  # UTF-16 BOM
        (b'{"task": "mortality", "texts": ["\xed\xa0\x80"]}', "invalid_encoding"),  # a surrogate as UTF-8
        (b'{"task": "mortality", "texts": ["\\ud800"]}', "invalid_encoding"),  # lone surrogate escape
        (b'{"task": "mortality", "texts": ["ok"], "\\udfff": 1}', "invalid_encoding"),  # ... in a key
        (b'{"task": "mortality", "texts": ["unterminated', "invalid_json"),
        (b'{"task": "mortality",}', "invalid_json"),
        (b"", "invalid_json"),
        (b"NaN-ish nonsense", "invalid_json"),
        (b"[" * 200_000 + b"]" * 200_000, "invalid_json"),  # nesting bomb
    ],
)
@pytest.mark.parametrize("path", ["/predict", "/extract"])
def test_r05_bad_encoding_and_malformed_json_are_400_never_500(client, engine, raw, code, path):
    r = client.post(path, content=raw, headers=JSON)
    assert_clear(r, 400, code)


# -- 6. hostile unicode --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, mortality, ner",
    [
        ("\u4e2d" * 5000, "mostly_unknown", "mostly_unknown"),  # CJK: one [UNK] per character
        ("!" * 5000, 200, 200),  # punctuation: one token each, a long note read in windows
        ("!" * 40_000, "too_large", "too_large"),  # ... over the request's token cap
        ("!?" * 20, 200, 200),
        # "a" + combining accent: one long word (its accents belong to it): a single [UNK]
        ("a\u0301" * 2500, "mostly_unknown", "mostly_unknown"),
        ("\u0301" * 5000, "invalid_input", "invalid_input"),  # only accents: nothing left once tokenised
        # emoji: one long word ([UNK]) for the sequence task, 3000 [UNK] words for NER
        ("\U0001f600" * 3000, "mostly_unknown", "mostly_unknown"),
        ("chest pain \u202e\u202d\u2066 lasix", 200, 200),  # bidi overrides and isolates
        ("chest\x00pain\x07\x1b[31m lasix\x7f", 200, 200),  # control characters, an ANSI escape
        ("\ufeff\u200b\u200c\u200d" + TEXT, 200, 200),  # BOM and zero-width characters
        ("x" * 99_999, "mostly_unknown", "mostly_unknown"),  # one huge word: a lone [UNK] is not text
    ],
)
def test_r06_hostile_unicode_is_limited_on_tokens_in_bounded_time(client, engine, text, mortality, ner):
    for task, expected in (("mortality", mortality), ("ner", ner)):
        t0 = time.perf_counter()
        r = predict(client, task, texts=[text])
        elapsed = time.perf_counter() - t0
        assert elapsed < 3.0, f"{task}: {elapsed:.1f} s"
        if expected != 200:
            assert_clear(r, 413 if expected == "too_large" else 422, expected)
        else:
            assert r.status_code == 200, (task, r.status_code, r.text[:200])
        if expected == 200 and task == "ner":
            for entity in r.json()["results"][0]["entities"]:
                assert text[entity["start"] : entity["end"]] == entity["text"]


def test_r06_dropped_characters_do_not_shift_entity_tags(client, engine):
    """Characters the tokenizer drops (bidi overrides, zero-width, controls) are words with no tokens:
    they are tagged O and every other word keeps the tag it has without them."""
    plain = "chest pain treated with iv lasix"
    noisy = "chest \u202e pain \x00 treated \u200b with iv \u2066 lasix"
    a = predict(client, "ner", texts=[plain]).json()["results"][0]["entities"]
    b = predict(client, "ner", texts=[noisy]).json()["results"][0]["entities"]
    strip = "\u202e\x00\u200b\u2066"
    assert [e["type"] for e in a] == [e["type"] for e in b]
    assert [e["text"] for e in a] == [" ".join(w for w in e["text"].split() if w not in strip) for e in b]
    assert all(noisy[e["start"] : e["end"]] == e["text"] for e in b)


def test_r06_dropped_words_keep_training_labels_aligned():
    """The same alignment in training rows: a word without tokens takes no label from its neighbour."""
    from bedside.adapters.encoding import IGNORE_INDEX, Encoder
    from bedside.adapters.tasks import PRESETS
    from bedside.adapters.tiny import tiny_tokenizer

    task = PRESETS["ner"]
    encoder = Encoder(tiny_tokenizer(), task, max_length=64)
    row = encoder.encode_words(["chest", "\u202e", "pain", "lasix"], ["B-problem", "O", "I-problem", "B-treatment"])
    assert row.word_index == [0, 2, 3] and row.n_words == 4
    labelled = [(pos, task.labels[label]) for pos, label in enumerate(row.label) if label != IGNORE_INDEX]
    assert [tag for _, tag in labelled] == ["B-problem", "I-problem", "B-treatment"]
    assert [pos for pos, _ in labelled] == row.word_starts


# -- 7. content types ----------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.bentoml+pickle",
        "application/octet-stream",
        "application/x-python-pickle",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json-patch+json",
        "",
        "application/jsonx",
    ],
)
def test_r07_unexpected_content_types_are_415_and_nothing_is_deserialised(
    client, engine, monkeypatch, tmp_path, content_type
):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Exploit(marker))
    assert pickle.loads(payload) is None and marker.exists()  # the payload is live...
    marker.unlink()
    loads = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: loads.append(1))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: loads.append(1))
    paths = [("/predict", {}), ("/extract", {})]
    if not content_type.startswith("multipart/"):  # the upload endpoint takes multipart (and parses no pickle)
        paths.append(("/admin/adapters/mortality", ADMIN))
    for path, headers in paths:
        r = client.post(path, content=payload, headers={"Content-Type": content_type, **headers})
        assert_clear(r, 415, "unsupported_media_type")
    assert not marker.exists() and loads == []  # ...and nothing ran it


# -- 8. task names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task",
    [
        "unknown",
        "../../etc",
        "../mortality",
        "mortality/../ner",
        "/etc/passwd",
        "MORTALITY",
        "mortality\x00",
        "mortality ",
        "%2e%2e",
        "",
        ".",
        "~root",
    ],
)
def test_r08_unknown_or_path_like_tasks_are_404_without_a_lookup(client, engine, monkeypatch, task):
    registry = engine.runtime.registry
    lookups = []
    for name in ("active", "show", "list", "version_path"):
        monkeypatch.setattr(registry, name, lambda *a, _n=name, **k: lookups.append(_n))
    for name in ("read_pointer", "read_record", "artifact_dir", "versions", "tasks"):
        monkeypatch.setattr(registry.backend, name, lambda *a, _n=name, **k: lookups.append(_n))
    assert_clear(client.post("/predict", json={"task": task, "texts": [TEXT]}), 404, "unknown_task")
    if "/" not in task:
        from urllib.parse import quote

        assert_clear(client.get(f"/readyz/{quote(task, safe='')}"), 404)
    assert lookups == []


# -- 10. too many items --------------------------------------------------------------------------------------
def test_r10_client_batch_over_the_maximum_is_413(client, engine, monkeypatch):
    submitted = []
    real_submit = engine.batcher.submit
    monkeypatch.setattr(
        engine.batcher, "submit", lambda rows, slot, **kw: submitted.append(len(rows)) or real_submit(rows, slot, **kw)
    )
    limit = engine.settings.max_items
    assert_clear(predict(client, "mortality", texts=["fever"] * (limit + 1)), (413, 422))
    assert_clear(predict(client, "relations", items=[REL_ITEM] * (limit + 1)), (413, 422))
    assert_clear(predict(client, "mortality", texts=["a"] * 100_000), (413, 422))
    assert submitted == []
    assert predict(client, "mortality", texts=["fever"] * limit).status_code == 200
    assert submitted == [limit]


# -- 11. overload --------------------------------------------------------------------------------------------
def test_r11_overload_is_refused_fast_with_retry_after_and_a_bounded_queue(client, engine, monkeypatch, before):
    monkeypatch.setattr(engine.batcher, "max_queue_rows", 4)
    monkeypatch.setattr(engine.batcher, "max_batch_rows", 4)
    monkeypatch.setattr(engine.batcher, "max_wait", 0.0)
    slow_forward(monkeypatch, engine, 0.25)
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], engine.batcher._queued_rows)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:  # capacity: 4 rows forwarding + 4 queued; 24 requests of one row is 3x that
        results = in_threads(timed_post, [(client, "/predict", {"task": "mortality", "texts": [TEXT]})] * 24)
    finally:
        stop.set()
        watcher.join()
    statuses = sorted(r.status_code for r, _ in results)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses.count(200) >= 4 and statuses.count(429) + statuses.count(503) >= 8, statuses
    for r, elapsed in results:
        if r.status_code != 200:
            assert_clear(r, (429, 503), "overloaded")
            assert r.headers["Retry-After"].isdigit()
            assert elapsed < 1.5, f"a refusal took {elapsed:.2f} s"
        else:
            assert same(r.json()["results"], before["mortality"][:1])
    assert peak[0] <= 4
    idle(engine)
    monkeypatch.undo()
    assert_server_up(client, before)


def test_r11_a_request_the_queue_cannot_take_is_refused_before_it_is_tokenised(client, engine, monkeypatch, before):
    tokenised = []
    real_encode = engine._encode

    async def counting_encode(*args, **kwargs):
        tokenised.append(1)
        return await real_encode(*args, **kwargs)

    monkeypatch.setattr(engine, "_encode", counting_encode)
    monkeypatch.setattr(engine.batcher, "admits", lambda: False)  # the rows waiting fill the wait bound
    r = predict(client, "ner", texts=[TEXT])
    assert_clear(r, (429,), "overloaded")
    assert r.headers["Retry-After"].isdigit() and tokenised == []
    monkeypatch.undo()
    assert_server_up(client, before)


# -- 12. disconnects and slow clients ------------------------------------------------------------------------
def test_r12_client_disconnects_release_their_slot(shared, monkeypatch, before):
    from bedside.service.app import create_app

    client, engine, _ = shared
    calls = []
    monkeypatch.setattr(engine.batcher, "max_wait", 0.0)
    monkeypatch.setattr(engine.batcher, "max_batch_rows", 3)  # one request per forward
    slow_forward(monkeypatch, engine, 0.4, calls)
    app = create_app(engine.settings, lambda: engine)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            async def one(i):
                try:
                    await asyncio.wait_for(
                        http.post("/predict", json={"task": "mortality", "texts": [TEXT] * 3}), 0.05 + 0.02 * i
                    )
                except TimeoutError:
                    return "gone"
                return "answered"

            return await asyncio.gather(*(one(i) for i in range(8)))

    outcomes = asyncio.run(go())
    assert outcomes.count("gone") == 8
    assert leases(engine) == 0  # released the moment each request was cancelled
    idle(engine)
    assert engine.batcher._queued_rows == 0 and leases(engine) == 0
    assert sum(calls) <= 6, f"cancelled requests were still sent to the model: {calls}"
    monkeypatch.undo()
    assert_server_up(client, before)


def test_r12_slow_client_holds_no_slot(shared, before):
    """A client that dribbles its body, then goes away, holds no lease or queue row meanwhile."""
    from bedside.service.app import create_app

    client, engine, _ = shared
    app = create_app(engine.settings, lambda: engine)
    body = json.dumps({"task": "mortality", "texts": [TEXT]}).encode()
    seen, sent, fast = [], [], []

    async def receive():
        seen.append((leases(engine), engine.batcher._queued_rows))
        if len(seen) == 3:  # mid-body: others are served meanwhile
            fast.append(await asyncio.to_thread(predict, client, "mortality"))
        if len(seen) <= 5:
            await asyncio.sleep(0.05)
            return {"type": "http.request", "body": body[:5] if len(seen) == 1 else b" ", "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))  # returns: the client is gone
    assert len(seen) == 6 and fast[0].status_code == 200
    assert all(held == (0, 0) for held in seen), seen
    assert leases(engine) == 0 and engine.batcher._queued_rows == 0
    assert_server_up(client, before)


# -- 13. timeouts --------------------------------------------------------------------------------------------
def test_r13_request_over_the_timeout_is_504_and_frees_its_slot(client, engine, monkeypatch, before):
    calls = []
    monkeypatch.setattr(engine.settings, "request_timeout_s", 0.3)
    monkeypatch.setattr(engine.batcher, "max_wait", 0.0)
    slow_forward(monkeypatch, engine, 1.0, calls)
    # the first is forwarding when it times out; the second times out still queued behind it
    results = in_threads(
        timed_post,
        [
            (client, "/predict", {"task": "mortality", "texts": [TEXT]}),
            (client, "/predict", {"task": "ner", "texts": [TEXT] * 2}),
        ],
    )
    for r, elapsed in results:
        assert_clear(r, 504, "timeout")
        assert elapsed < 0.9, f"the 504 took {elapsed:.2f} s"
    assert leases(engine) == 0  # freed at the 504, before the forward ended
    idle(engine)
    assert engine.batcher._queued_rows == 0
    assert sum(calls) <= 3
    monkeypatch.undo()
    assert_server_up(client, before)


# -- 31. PHI canary ------------------------------------------------------------------------------------------
def test_r31_phi_canary_never_in_logs_metrics_or_error_bodies(client, engine, monkeypatch, caplog, capsys):
    import logging

    from prometheus_client import REGISTRY, generate_latest

    from bedside.adapters.predict import Predictor

    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if logger.level > logging.DEBUG:
            monkeypatch.setattr(logger, "level", logging.DEBUG)
    note = f"{CANARY} septic shock"
    bodies = []

    def send(path, **kwargs):
        r = client.post(path, **kwargs)
        if r.status_code >= 400:  # a valid answer may quote its input (an entity's text)
            bodies.append(f"{r.status_code} {r.headers} {r.text}")
        return r

    # valid
    for task, body in [
        ("mortality", {"texts": [note]}),
        ("ner", {"texts": [f"chest pain {CANARY}"]}),
        ("relations", {"items": [{**REL_ITEM, "text": REL_ITEM["text"] + " " + CANARY}]}),
    ]:
        assert send("/predict", json={"task": task, **body}).status_code == 200
    assert send("/extract", json={"text": f"chest pain treated with iv lasix {CANARY}"}).status_code == 200
    # invalid
    for payload in [
        {"task": "mortality", "texts": [" ".join([note] * 12000)]},  # over the characters of a text
        {"task": CANARY, "texts": [note]},
        {"task": "mortality", "texts": note},
        {"task": "mortality", "texts": [note], CANARY: note},
        {
            "task": "relations",
            "items": [{"text": note, "head": {"start": 0, "end": 5}, "tail": {"start": 90, "end": 95}}],
        },
        {"task": "mortality", "texts": [note] * 100},
    ]:
        assert 400 <= send("/predict", json=payload).status_code < 500
    for raw in [
        b'{"texts": ["' + CANARY.encode() + b'\xff"]}',
        b'{"texts": ["' + CANARY.encode() + b'"',
        b'{"texts": ["' + CANARY.encode() + b'\\udc00"]}',
    ]:
        assert send("/predict", content=raw, headers=JSON).status_code == 400
    assert send("/predict", content=note.encode(), headers={"Content-Type": "text/plain"}).status_code == 415
    assert 400 <= send(f"/predict?patient={CANARY}", json={"task": CANARY}).status_code < 500
    for path in (f"/readyz/{CANARY}", f"/{CANARY}"):
        r = client.get(path)
        assert r.status_code == 404
        bodies.append(r.text)
    # crashing: the model, then a decoder, fail with the text in the exception
    run = engine.batcher.run

    def crash(batch):
        raise RuntimeError(f"forward failed on {CANARY}")

    monkeypatch.setattr(engine.batcher, "run", crash)
    assert send("/predict", json={"task": "mortality", "texts": [note]}).status_code == 500
    monkeypatch.setattr(engine.batcher, "run", run)

    def bad_decode(self, item, logits):
        raise KeyError(f"cannot decode {CANARY}")

    monkeypatch.setattr(Predictor, "decode", bad_decode)
    assert send("/predict", json={"task": "mortality", "texts": [note]}).status_code == 500
    assert send("/extract", json={"text": note}).status_code == 500
    # Nothing escapes the app: a server logs an escaped exception's traceback, message included.
    from bedside.service.app import create_app

    status = asyncio.run(
        asgi(
            create_app(engine.settings, lambda: engine),
            "/predict",
            json.dumps({"task": "mortality", "texts": [note]}).encode(),
        )
    )
    assert status == 500
    monkeypatch.undo()

    captured = capsys.readouterr()
    # every record but the test's own HTTP client's (which logs the URLs it calls)
    records = [rec for rec in caplog.records if not rec.name.startswith("httpx")]
    assert any(rec.name.startswith("bedside") and rec.levelno >= logging.ERROR for rec in records), (
        "nothing was logged: the check would be vacuous"
    )
    logged = "\n".join(logging.Formatter("%(name)s %(message)s").format(rec) for rec in records)
    for where, text in [
        ("error bodies", "\n".join(bodies)),
        ("logs", logged),
        ("log arguments", "\n".join(repr(rec.args) for rec in records)),
        ("stdout", captured.out),
        ("stderr", captured.err),
        ("metrics", generate_latest(REGISTRY).decode()),
    ]:
        assert CANARY.lower() not in text.lower(), f"the canary leaked into {where}"
    assert engine.runtime.registry.audit_entries() is not None


# -- 32 (D1). integers of thousands of digits ------------------------------------------------------------
def test_r32_integers_of_thousands_of_digits_are_400_never_500(client, engine):
    huge = "1" * 5000
    for path, raw in [
        ("/predict", '{"task": "mortality", "texts": ["x"], "n": ' + huge + "}"),
        ("/extract", '{"text": "x", "n": ' + huge + "}"),
        (
            "/predict",
            '{"task": "relations", "items": [{"text": "lasix for edema", "head": {"start": '
            + huge
            + ', "end": 5}, "tail": {"start": 10, "end": 15}}]}',
        ),
    ]:
        body = assert_clear(client.post(path, content=raw.encode(), headers=JSON), 400, "invalid_json")
        assert huge[:50] not in body["message"]


# -- 2 (D8). strict types: no coercion of strings, floats or booleans into numbers ---------------------------
@pytest.mark.parametrize("head", [{"start": "0", "end": "5"}, {"start": False, "end": True}, {"start": 0.0, "end": 5}])
def test_r02_span_fields_take_integers_only(client, engine, head):
    item = {**REL_ITEM, "head": head}
    assert_clear(predict(client, "relations", items=[item]), 422, "invalid_request")
    assert_clear(predict(client, "mortality", texts=[7]), 422, "invalid_request")


# -- 36 (D9). strings that tokenise to almost nothing -----------------------------------------------------
@pytest.mark.parametrize("text", ["1" * 100_000, "\U0001f600" * 50_000, "\u4e2d\u6587" * 2000])
def test_r36_mostly_unknown_text_is_422_for_every_kind(client, engine, text):
    for task in ("mortality", "ner"):
        r = predict(client, task, texts=[text])
        assert r.status_code in (413, 422), (task, r.status_code)
        assert r.json()["error"] in ("mostly_unknown", "too_large")
    item = {
        "text": text[:1000] + " lasix for edema",
        "head": {"start": 1001, "end": 1006},
        "tail": {"start": 1011, "end": 1016},
    }
    assert predict(client, "relations", items=[item]).status_code in (200, 422)  # a pair reads its local window


# -- 35 (D4). over-long texts are measured before tokenising, and tokenised off the event loop ---------------
def test_r35_character_caps_refuse_before_tokenising(client, engine, monkeypatch):
    calls = []
    monkeypatch.setattr(engine.runtime, "lease", lambda task: calls.append(task) or pytest.fail("leased"))
    text = "!?" * (engine.settings.max_text_chars // 2 + 1)
    assert_clear(predict(client, "ner", texts=[text]), 413, "too_large")
    assert_clear(client.post("/extract", json={"text": text}), 413, "too_large")
    assert not calls


def test_r35_long_notes_are_tokenised_in_the_worker_thread(client, engine, monkeypatch):
    import threading

    from bedside.adapters.predict import Predictor

    where = []
    encode = Predictor.encode

    def spy(self, item, budget=None):
        where.append(threading.current_thread().name)
        return encode(self, item, budget)

    monkeypatch.setattr(Predictor, "encode", spy)
    assert predict(client, "ner", texts=["chest pain treated with iv lasix"]).status_code == 200
    assert predict(client, "ner", texts=["chest pain treated with iv lasix . " * 200]).status_code == 200
    assert not where[0].startswith("bedside-tokenize") and where[1].startswith("bedside-tokenize")


def test_r35_a_text_that_may_be_refused_is_counted_in_the_gaps_between_forwards(client, engine, monkeypatch):
    from bedside.service import inference

    waits = []
    monkeypatch.setattr(engine.batcher, "wait_for_gap", lambda timeout: waits.append(timeout))
    monkeypatch.setattr(inference, "SLICE_S", 0.0)  # wait at every piece
    assert_clear(predict(client, "ner", texts=["qzx " * 25_000]), 413, "too_large")  # 75,000 pieces
    assert_clear(predict(client, "mortality", texts=["!?" * 50_000]), 413, "too_large")  # 100,000 words
    assert len(waits) > 10
    waits.clear()
    assert predict(client, "ner", texts=["chest pain treated with iv lasix . " * 200]).status_code == 200
    assert not waits  # a note too short to pass a cap is never held back


# -- 34 (D6). a body that stops arriving -----------------------------------------------------------------
def test_r34_a_body_that_stops_arriving_is_408_and_frees_its_slot(shared, monkeypatch):
    from bedside.service.app import create_app

    _, engine, _ = shared
    monkeypatch.setattr(engine.settings, "body_timeout_s", 0.3)
    app = create_app(engine.settings, lambda: engine)
    sent, calls = [], [0]

    async def receive():
        calls[0] += 1
        if calls[0] == 1:
            return {"type": "http.request", "body": b'{"task": "mortality", ', "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    t0 = time.perf_counter()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    assert sent[0]["status"] == 408 and time.perf_counter() - t0 < 2
    assert leases(engine) == 0


# -- 12. a client gone while its rows wait: they are withdrawn, and the request ends as the client's --------
def test_r12_rows_of_a_client_that_disconnected_are_never_forwarded(shared, monkeypatch, before):
    from bedside.service.app import create_app

    client, engine, _ = shared
    calls = []
    monkeypatch.setattr(engine.batcher, "max_wait", 0.0)
    slow_forward(monkeypatch, engine, 0.5, calls)
    app = create_app(engine.settings, lambda: engine)
    statuses = []

    async def one(text: str, leave_after: float | None):
        body = json.dumps({"task": "mortality", "texts": [text] * 5}).encode()
        state = {"sent": False}

        async def receive():
            if not state["sent"]:
                state["sent"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            if leave_after is None:
                await asyncio.sleep(3600)
            await asyncio.sleep(leave_after)
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)

    async def go():
        first = asyncio.create_task(one(TEXT, None))  # occupies the model for 0.5 s
        await asyncio.sleep(0.1)
        await one("routine follow up", 0.05)  # queued behind it, then gone
        await first

    asyncio.run(go())
    assert 499 in statuses and 200 in statuses
    assert calls == [5], f"the gone client's rows were forwarded: {calls}"
    idle(engine)
    monkeypatch.undo()
    assert_server_up(client, before)

"""RELIABILITY.md, row by row: what bad input and faults must get.

Every row of /work/shared/RELIABILITY.md has at least one ``test_rNN_...``. Rows 15-23, 25, 26
and 29 are about the adapter registry and are tested there; the others are here.

====  ===========================================================================================
row   tests
====  ===========================================================================================
 1    test_r01_empty_or_whitespace_text_is_refused_without_a_model_call (this module)
 2    test_r02_wrong_types_missing_and_extra_fields_are_422_without_echo,
      test_r02_query_parameters_are_validated_without_echo
 3    test_r03_over_the_token_limit_is_422_by_default,
      test_r03_truncation_only_where_configured_and_flagged
 4    test_r04_large_bodies_are_413_before_parsing,
      test_r04_chunked_body_without_length_is_413_while_streaming,
      test_r04_endless_stream_stops_being_read_after_the_limit,
      test_r04_memory_stays_flat_across_10mb_bodies
 5    test_r05_bad_encoding_and_malformed_json_are_400_never_500
 6    test_r06_hostile_unicode_is_limited_on_tokens_in_bounded_time,
      test_r06_dropped_characters_do_not_shift_entity_tags, test_r06_dropped_words_keep_training_labels_aligned
 7    test_r07_unexpected_content_types_are_415_and_nothing_is_deserialised
 8    test_r08_unknown_or_path_like_tasks_are_404_without_a_lookup
 9    test_r09_task_without_an_active_adapter_is_503_and_reported_per_task
10    test_r10_client_batch_over_the_maximum_is_413
11    test_r11_overload_is_refused_fast_with_retry_after_and_a_bounded_queue
12    test_r12_client_disconnects_release_their_slot,
      test_r12_slow_client_holds_no_slot
13    test_r13_request_over_the_timeout_is_504_and_frees_its_slot
14    test_r14_admin_without_a_token_or_with_a_predict_token_is_denied_and_audited
15    tests/adapters/registry/test_validate.py: test_r15_names_that_could_escape_are_refused,
      test_r15_symlink_is_refused, test_r15_hardlink_is_refused,
      test_r15_subdirectory_and_fifo_are_refused, test_r15_archives_are_refused_unopened
16    tests/adapters/registry/test_validate.py: test_r16_unexpected_files_are_refused,
      test_r16_method_specific_files
17    tests/adapters/registry/test_validate.py: test_r17_forbidden_configs_are_refused,
      test_r17_invalid_json_config
18    tests/adapters/registry/test_validate.py: test_r18_foreign_base_or_revision_refused_without_network,
      test_r18_served_base_name_is_accepted, test_r18_artifact_from_another_base_is_refused
19    tests/adapters/registry/test_registry.py: test_r19_shape_mismatch_refused_at_staging_current_keeps_serving,
      test_r19_shapes_are_checked_against_base_modules
20    tests/adapters/registry/test_safetensors.py: test_r20_rank_above_the_cap_is_refused,
      test_r20_rank_cap_is_configurable_and_checked_on_tensors, test_r20_oversized_tensor_file_is_refused,
      test_r20_header_with_100k_entries_is_refused_quickly,
      test_r20_oversized_header_length_is_refused_before_reading
21    tests/adapters/registry/test_safetensors.py: test_r21_truncated_file_is_refused,
      test_r21_bit_flips_are_refused, test_r21_bad_offsets_are_refused,
      test_r21_shape_and_dtype_must_match_the_bytes, test_r21_non_finite_weights_are_refused,
      test_r21_non_finite_check_covers_half_precision
22    tests/adapters/registry/test_validate.py: test_r22_label_count_must_equal_head_outputs,
      test_r22_duplicate_labels_are_refused, test_r22_ner_head_for_mortality_is_refused,
      test_r22_custom_task_keeps_its_first_spec
23    tests/adapters/registry/test_registry.py: test_r23_failing_smoke_is_refused_and_previous_stays_active,
      test_r23_custom_smoke_callback_decides
24    test_r24_swaps_under_load_answer_one_version_and_match_it
25    tests/adapters/registry/test_registry.py: test_r25_concurrent_activations_are_serialised_and_audited;
      tests/adapters/registry/test_processes.py: test_r25_20_concurrent_activations_across_two_tasks_from_processes
26    tests/adapters/registry/test_registry.py: test_r26_rollback_is_atomic_and_audited,
      test_r26_rollback_to_a_deleted_version_is_not_found
27    test_r27_killed_worker_fails_in_flight_requests_fast_and_restarts (a real ``bentoml serve``)
28    test_r28_out_of_memory_fails_only_that_request
29    tests/adapters/registry/test_registry.py: test_r29_store_failures_leave_the_registry_unchanged
30    test_r30_missing_or_corrupt_active_adapter_at_start
31    test_r31_phi_canary_never_in_logs_metrics_or_error_bodies (in process: every logger at DEBUG,
      stdout/stderr, Prometheus); the real server's log is checked by
      tests/service/test_server.py::test_phi_canary_never_in_logs_metrics_or_error_bodies
====  ===========================================================================================

"Server up" (a normal predict of every task answers 200 with the same result as before) is
checked after each fault with :func:`assert_server_up`.

Most tests share one in-process engine (module scope, no store polling) and change only
attributes through ``monkeypatch``; :func:`idle` waits until the batcher is empty again, so no
test leaves work behind for the next one.
"""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import active_store
import torch

CANARY = "PHI-CANARY-5e1d77"
TEXT = "septic shock , intubated in the icu"
REL_ITEM = {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}}
NORMAL = {"mortality": {"texts": [TEXT, "routine follow up , stable"]},
          "length_of_stay": {"texts": ["admitted for surgery and rehab placement"]},
          "ner": {"texts": ["chest pain treated with iv lasix"]},
          "relations": {"items": [REL_ITEM]}}
ADMIN = {"Authorization": "Bearer admin-secret"}
JSON = {"Content-Type": "application/json"}


# -- helpers -------------------------------------------------------------------------------------------------
def build(store, served_folder, poll: bool = False, **overrides):
    """An Engine on ``store`` and a TestClient over the app (no BentoML)."""
    from starlette.testclient import TestClient

    from bedside.service.app import create_app
    from bedside.service.inference import Engine
    from tests.service.conftest import make_settings

    settings = make_settings(store, served_folder, **overrides)
    engine = Engine(settings)
    engine.start(poll=poll)
    return TestClient(create_app(settings, lambda: engine), raise_server_exceptions=False), engine


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
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
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

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}
    await app(scope, receive, send)
    return sent[0]["status"]


def timed_post(client, path: str, payload: dict, headers: dict | None = None):
    t0 = time.perf_counter()
    r = client.post(path, json=payload, headers=headers)
    return r, time.perf_counter() - t0


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
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


# -- 1. empty input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    {"task": "mortality", "texts": [""]},
    {"task": "mortality", "texts": ["   \t\n  "]},
    {"task": "mortality", "texts": [TEXT, " "]},
    {"task": "mortality", "texts": []},
    {"task": "ner", "texts": ["\u3000\u2003"]},            # unicode spaces
    {"task": "ner", "texts": ["\x00\x01\u202e\u200b"]},    # nothing left once tokenised
    {"task": "mortality", "texts": ["\x00\u200b\u202e"]},
    {"task": "relations", "items": [{**REL_ITEM, "text": "  "}]},
])
def test_r01_empty_or_whitespace_text_is_refused_without_a_model_call(client, engine, monkeypatch, payload):
    submitted = []
    monkeypatch.setattr(engine.batcher, "submit", lambda *a, **k: submitted.append(a) or pytest.fail("model call"))
    assert_clear(client.post("/predict", json=payload), (400, 422))
    assert_clear(client.post("/extract", json={"text": "  \n "}), (400, 422))
    assert submitted == []


# -- 2. wrong types, missing and extra fields ----------------------------------------------------------------
@pytest.mark.parametrize("payload", [
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
])
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
LONG_ITEM = {"text": LONG + " lasix was given for edema", "head": {"start": len(LONG) + 1, "end": len(LONG) + 6},
             "tail": {"start": len(LONG) + 21, "end": len(LONG) + 26}}


def test_r03_over_the_token_limit_is_422_by_default(client, engine, monkeypatch):
    for task, body in [("mortality", {"texts": [TEXT, LONG]}), ("ner", {"texts": [LONG]}),
                       ("relations", {"items": [LONG_ITEM]})]:
        error = assert_clear(predict(client, task, **body), 422, "too_long")
        assert "limit is 64" in error["message"]
    assert_clear(client.post("/extract", json={"text": LONG}), 422, "too_long")
    # the service's max_length setting overrides the adapter's limit
    monkeypatch.setattr(engine.settings, "max_length", 8)
    assert_clear(predict(client, "mortality", texts=[TEXT]), 422, "too_long")


def test_r03_truncation_only_where_configured_and_flagged(client, engine, monkeypatch, before):
    monkeypatch.setattr(engine.settings, "truncate", True)
    for task, body in [("mortality", {"texts": [TEXT, LONG]}), ("ner", {"texts": [LONG]}),
                       ("relations", {"items": [LONG_ITEM]})]:
        r = predict(client, task, **body)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert results[-1]["truncated"] is True
        if task == "mortality":
            assert "truncated" not in results[0]  # only the over-long input is flagged
        if task == "ner":  # words past the cut are tagged O, offsets stay in the text
            assert all(LONG[e["start"]:e["end"]] == e["text"] for e in results[0]["entities"])
    assert_server_up(client, before)


# -- 4. big bodies -------------------------------------------------------------------------------------------
@pytest.fixture()
def no_parsing(monkeypatch):
    from bedside.service import app as service_app

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

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
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
            yield big[start:start + (1 << 20)]

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
@pytest.mark.parametrize("raw, code", [
    (b'{"task": "mortality", "texts": ["caf\xe9"]}', "invalid_encoding"),          # latin-1
    (b'\xff\xfe{\x00"\x00', "invalid_encoding"),                                   # UTF-16 BOM
    (b'{"task": "mortality", "texts": ["\xed\xa0\x80"]}', "invalid_encoding"),      # a surrogate as UTF-8
    (b'{"task": "mortality", "texts": ["\\ud800"]}', "invalid_encoding"),           # lone surrogate escape
    (b'{"task": "mortality", "texts": ["ok"], "\\udfff": 1}', "invalid_encoding"),  # ... in a key
    (b'{"task": "mortality", "texts": ["unterminated', "invalid_json"),
    (b'{"task": "mortality",}', "invalid_json"),
    (b"", "invalid_json"),
    (b"NaN-ish nonsense", "invalid_json"),
    (b"[" * 200_000 + b"]" * 200_000, "invalid_json"),                             # nesting bomb
])
@pytest.mark.parametrize("path", ["/predict", "/extract"])
def test_r05_bad_encoding_and_malformed_json_are_400_never_500(client, engine, raw, code, path):
    r = client.post(path, content=raw, headers=JSON)
    assert_clear(r, 400, code)


# -- 6. hostile unicode --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mortality, ner", [
    ("\u4e2d" * 5000, "too_long", "too_long"),        # CJK: one token per character
    ("!" * 5000, "too_long", "too_long"),             # punctuation: one token each
    ("!?" * 20, 200, 200),                            # ... within the limit
    # "a" + combining accent: accents are stripped, so one long word ([UNK]) for the sequence task;
    # NER splits words at the accent: 2500 one-token words
    ("a\u0301" * 2500, 200, "too_long"),
    ("\u0301" * 5000, "invalid_input", "invalid_input"),  # only accents: nothing left once tokenised
    # emoji: one long word for the sequence task, 3000 words for NER
    ("\U0001F600" * 3000, 200, "too_long"),
    ("chest pain \u202e\u202d\u2066 lasix", 200, 200),  # bidi overrides and isolates
    ("chest\x00pain\x07\x1b[31m lasix\x7f", 200, 200),  # control characters, an ANSI escape
    ("\ufeff\u200b\u200c\u200d" + TEXT, 200, 200),      # BOM and zero-width characters
    ("x" * 99_999, 200, 200),                          # one huge word -> [UNK]
])
def test_r06_hostile_unicode_is_limited_on_tokens_in_bounded_time(client, engine, text, mortality, ner):
    for task, expected in (("mortality", mortality), ("ner", ner)):
        t0 = time.perf_counter()
        r = predict(client, task, texts=[text])
        elapsed = time.perf_counter() - t0
        assert elapsed < 3.0, f"{task}: {elapsed:.1f} s"
        if expected != 200:
            assert_clear(r, 422, expected)
        else:
            assert r.status_code == 200, (task, r.status_code, r.text[:200])
        if expected == 200 and task == "ner":
            for entity in r.json()["results"][0]["entities"]:
                assert text[entity["start"]:entity["end"]] == entity["text"]


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
    assert all(noisy[e["start"]:e["end"]] == e["text"] for e in b)


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


@pytest.mark.parametrize("content_type", [
    "application/vnd.bentoml+pickle", "application/octet-stream", "application/x-python-pickle",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "application/json-patch+json", "", "application/jsonx",
])
def test_r07_unexpected_content_types_are_415_and_nothing_is_deserialised(client, engine, monkeypatch, tmp_path,
                                                                          content_type):
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
@pytest.mark.parametrize("task", ["unknown", "../../etc", "../mortality", "mortality/../ner", "/etc/passwd",
                                  "MORTALITY", "mortality\x00", "mortality ", "%2e%2e", "", ".", "~root"])
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


# -- 9. no active adapter ------------------------------------------------------------------------------------
def test_r09_task_without_an_active_adapter_is_503_and_reported_per_task(tmp_path, artifacts, served_folder):
    store = push_all(tmp_path / "store", artifacts[0], tasks={"mortality", "length_of_stay", "ner"})
    client, engine = build(store, served_folder, poll=True)
    try:
        error = assert_clear(predict(client, "relations"), 503, "task_not_ready")
        assert predict(client, "relations").headers["Retry-After"].isdigit() and error
        r = client.get("/readyz/relations")
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
        assert r.json()["status"] == "no_adapter"
        for task in ("mortality", "length_of_stay", "ner"):
            assert client.get(f"/readyz/{task}").status_code == 200
            assert predict(client, task).status_code == 200
        tasks = client.get("/status").json()["tasks"]
        assert tasks["relations"]["status"] == "no_adapter" and "version" not in tasks["relations"]
        assert {tasks[t]["status"] for t in ("mortality", "length_of_stay", "ner")} == {"ready"}
        # /extract still answers entities; relations are skipped while that task is not ready
        r = client.post("/extract", json={"text": "chest pain treated with iv lasix"})
        assert r.status_code == 200 and [a["task"] for a in r.json()["adapters"]] == ["ner"]
        # once an adapter is activated the task turns ready
        push_all(store, artifacts[0], tasks={"relations"})
        deadline = time.monotonic() + 10
        while client.get("/readyz/relations").status_code != 200:
            assert time.monotonic() < deadline, "relations never became ready"
            time.sleep(0.1)
        assert predict(client, "relations").status_code == 200
    finally:
        engine.close()


# -- 10. too many items --------------------------------------------------------------------------------------
def test_r10_client_batch_over_the_maximum_is_413(client, engine, monkeypatch):
    submitted = []
    real_submit = engine.batcher.submit
    monkeypatch.setattr(engine.batcher, "submit", lambda rows, slot: submitted.append(len(rows)) or
                        real_submit(rows, slot))
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
                    await asyncio.wait_for(http.post("/predict", json={"task": "mortality", "texts": [TEXT] * 3}),
                                           0.05 + 0.02 * i)
                except asyncio.TimeoutError:
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

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}

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
    results = in_threads(timed_post, [(client, "/predict", {"task": "mortality", "texts": [TEXT]}),
                                      (client, "/predict", {"task": "ner", "texts": [TEXT] * 2})])
    for r, elapsed in results:
        assert_clear(r, 504, "timeout")
        assert elapsed < 0.9, f"the 504 took {elapsed:.2f} s"
    assert leases(engine) == 0  # freed at the 504, before the forward ended
    idle(engine)
    assert engine.batcher._queued_rows == 0
    assert sum(calls) <= 3
    monkeypatch.undo()
    assert_server_up(client, before)


# -- 14. admin authorisation ---------------------------------------------------------------------------------
def test_r14_admin_without_a_token_or_with_a_predict_token_is_denied_and_audited(shared, artifacts, served_folder):
    from starlette.testclient import TestClient

    from bedside.service.app import create_app
    from tests.service.conftest import make_settings

    _, engine, _ = shared
    registry = engine.runtime.registry
    settings = make_settings(registry.root, served_folder, predict_tokens="predict-secret")
    client = TestClient(create_app(settings, lambda: engine), raise_server_exceptions=False)
    closed = TestClient(create_app(make_settings(registry.root, served_folder, admin_tokens=""), lambda: engine),
                        raise_server_exceptions=False)
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
             for p in sorted(artifacts[1]["mortality"].iterdir())]
    versions = [(v.task, v.version, v.active) for v in registry.list()]
    audited = len(registry.audit_entries())
    upload = {"files": files}
    attempts = [  # (client, method, path, token, request kwargs, status, code, audited action)
        (client, "post", "/admin/adapters/mortality?activate=true", None, upload, 401, "unauthorized", "push"),
        (client, "post", "/admin/adapters/mortality", "predict-secret", upload, 403, "forbidden", "push"),
        (client, "post", "/admin/adapters/mortality", "wrong-token", upload, 401, "unauthorized", "push"),
        (client, "post", "/admin/adapters/mortality/v1/activate", None, {}, 401, "unauthorized", "activate"),
        (client, "post", "/admin/adapters/mortality/v1/activate", "predict-secret", {}, 403, "forbidden", "activate"),
        (client, "post", "/admin/adapters/mortality/rollback", "predict-secret", {}, 403, "forbidden", "rollback"),
        (client, "get", "/admin/adapters", None, {}, 401, "unauthorized", "list"),
        (closed, "post", "/admin/adapters/mortality/v1/activate", "admin-secret", {}, 403, "admin_disabled",
         "activate"),
    ]
    for http, method, path, token, kwargs, status, code, _ in attempts:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = getattr(http, method)(path, headers=headers, **kwargs)
        assert_clear(r, status, code)
        if status == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
    entries = registry.audit_entries()[audited:]
    assert [(e.action, e.outcome, e.reason) for e in entries] == [(a[7], "denied", a[6]) for a in attempts]
    for entry, (_, _, _, token, _, _, _, action) in zip(entries, attempts):
        assert entry.task == (None if action == "list" else "mortality")
        assert entry.actor == "anonymous" if token is None else entry.actor.startswith("token:")
        assert "secret" not in entry.model_dump_json()  # a hash prefix names the caller, never the token
    assert [(v.task, v.version, v.active) for v in registry.list()] == versions  # nothing changed
    # a denied attempt on a made-up task records no caller-chosen text
    r = client.post(f"/admin/adapters/{CANARY.lower().replace('-', '_')}/v1/activate")
    assert_clear(r, 401)
    assert CANARY.lower().replace("-", "_") not in registry.audit_entries()[-1].model_dump_json()


# -- 24. swaps under load ------------------------------------------------------------------------------------
def test_r24_swaps_under_load_answer_one_version_and_match_it(tmp_path, artifacts, served_folder):
    from bedside.adapters.registry import Registry

    store = push_all(tmp_path / "store", artifacts[0])
    registry = Registry(store)
    registry.push(artifacts[1]["mortality"], task="mortality")  # v2, a different model
    # resident_cap=0: a swapped-out version is unloaded as soon as its last lease ends
    client, engine = build(store, served_folder, resident_cap=0)
    texts = [TEXT, "routine follow up , stable", "acute kidney failure , creatinine worsened"]
    rotations = [texts[k:] + texts[:k] for k in range(3)]
    try:
        expected, shas = {}, {}
        for version in ("v2", "v1"):
            assert client.post(f"/admin/adapters/mortality/{version}/activate", headers=ADMIN).status_code == 200
            data = predict(client, "mortality", texts=texts).json()
            expected[version], shas[version] = data["results"], data["adapter"]["sha256"]
        assert not same(expected["v1"], expected["v2"]), "the two versions must answer differently"
        stop, responses = threading.Event(), []

        def load(k):
            while not stop.is_set():
                responses.append((k, predict(client, "mortality", texts=rotations[k])))

        threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        swaps = []
        try:
            for version in ["v2", "v1"] * 4:
                r = client.post(f"/admin/adapters/mortality/{version}/activate", headers=ADMIN)
                swaps.append(r.status_code)
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert swaps == [200] * 8
        assert len(responses) >= 20
        seen = set()
        for k, r in responses:
            assert r.status_code == 200, r.text
            data = r.json()
            version = data["adapter"]["version"]
            seen.add(version)
            assert data["adapter"]["sha256"] == shas[version]
            by_text = dict(zip(texts, expected[version]))
            assert same(data["results"], [by_text[t] for t in rotations[k]]), (version, data["results"])
        assert seen == {"v1", "v2"}
        idle(engine)
        assert predict(client, "mortality").status_code == 200  # its lease's end frees what is retired
        assert leases(engine) == 0 and not engine.runtime.cache.retired
    finally:
        engine.close()


# -- 27. a worker killed mid-request (real server) -----------------------------------------------------------
def _worker(process):
    import psutil

    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module", autouse=True)
def early_server(request, tmp_path_factory, served_folder):
    """The r27 server, started with the module's first test when r27 is selected: its ~20 s start
    then overlaps the in-process tests. Yields (process, url, log file) or None."""
    if not any(item.name.startswith("test_r27") for item in request.session.items):
        yield None
        return
    from bedside.service.server import server_env, start_server, stop_server
    from tests.service.conftest import free_port

    store = request.getfixturevalue("shared")[1].runtime.registry.root  # read only here
    url = f"http://127.0.0.1:{free_port()}"
    # A long batch wait keeps requests in flight for ~1.5 s, so the kill lands mid-request.
    env = server_env(store=store, backbone=served_folder, device="cpu", threads=1, max_wait_ms=1500,
                     max_batch_rows=4096)
    env["PYTHONUNBUFFERED"] = "1"  # the log is read while the server runs
    log_file = tmp_path_factory.mktemp("r27") / "server.log"
    process = start_server(int(url.rsplit(":", 1)[1]), env, log_file=log_file)
    try:
        yield process, url, log_file
    finally:
        stop_server(process)


def test_r27_killed_worker_fails_in_flight_requests_fast_and_restarts(early_server):
    """BentoML (circus) keeps the listening socket in its arbiter and respawns a killed worker.

    What happens, measured: in-flight requests get the connection closed at once (httpx
    RemoteProtocolError) instead of hanging; while the new worker loads, the socket accepts but
    nobody answers (probes time out, which a probe counts as not ready) and /readyz is never 200;
    the first 200 from /readyz comes only after the engine reloaded every active adapter.
    The respawn comes at circus' next check (BentoML sets check_delay=10 s): 8-25 s here in all.
    BentoML does not respawn when BENTOML_CONTAINERIZED is set (its own images); then the socket
    stays open with nobody answering, and only an orchestrator's liveness probe restarts it."""
    from bedside.service.server import wait_ready

    process, url, log_file = early_server
    wait_ready(url, process, timeout=120)
    (old,) = _worker(process)
    payload = {"task": "ner", "texts": ["chest pain treated with iv lasix"] * 64}

    def call():
        t0 = time.monotonic()
        try:
            r = httpx.post(f"{url}/predict", json=payload, timeout=30)
            return r.status_code, time.monotonic() - t0
        except httpx.HTTPError as exc:
            return type(exc).__name__, time.monotonic() - t0

    results = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.6)
    killed_at = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads), "an in-flight request hung"
    failed_within = time.monotonic() - killed_at
    assert len(results) == 4 and all(not isinstance(s, int) or s >= 500 for s, _ in results), results
    assert failed_within < 5, f"in-flight requests took {failed_within:.1f} s to fail"

    probes, deadline = [], time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/readyz", timeout=1.0).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        probes.append(status)
        if status == 200:
            break
        time.sleep(0.2)
    assert probes[-1] == 200, f"the server did not come back: {probes[-5:]}"
    assert all(p == 503 or isinstance(p, str) for p in probes[:-1]), probes
    assert process.poll() is None
    (new,) = _worker(process)
    assert new.pid != old.pid
    for task in ("mortality", "ner"):
        r = httpx.get(f"{url}/readyz/{task}", timeout=10)
        assert r.status_code == 200 and r.json()["version"] == "v1"
    r = httpx.post(f"{url}/predict", json={"task": "mortality", "texts": [TEXT]}, timeout=30)
    assert r.status_code == 200 and r.json()["adapter"]["version"] == "v1"
    assert log_file.read_text(errors="replace").count("task relations now serves version v1") == 2


# -- 28. out of memory ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [
    lambda: torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB {CANARY}"),
    lambda: RuntimeError(f"[enforce fail] DefaultCPUAllocator: not enough memory {CANARY}"),
], ids=["cuda_oom", "cpu_oom"])
def test_r28_out_of_memory_fails_only_that_request(client, engine, monkeypatch, before, error):
    run = engine.batcher.run
    raised, armed, batches = [], [True], []

    def forward(batch):  # chunks of max_batch_rows: fail any chunk that holds many NER rows
        names = batch.slots
        batches.append({name.split(":")[0] for name in names})
        if armed[0] and sum(name.startswith("ner:") for name in names) >= 16:
            raised.append(len(batch))
            raise error()
        return run(batch)

    monkeypatch.setattr(engine.batcher, "run", forward)
    monkeypatch.setattr(engine.batcher, "max_wait", 0.3)  # the two requests share one forward...
    monkeypatch.setattr(engine.batcher, "max_batch_rows", 64)  # ...and one chunk
    big = {"task": "ner", "texts": ["chest pain treated with iv lasix"] * 40}
    small = {"task": "mortality", "texts": [TEXT]}
    (r_big, _), (r_small, _) = in_threads(timed_post, [(client, "/predict", big), (client, "/predict", small)])
    assert raised, "the large batch was not forwarded"
    assert_clear(r_big, (500, 503, 507))
    assert CANARY not in r_big.text and "CUDA" not in r_big.text and "Allocator" not in r_big.text
    assert {"ner", "mortality"} in batches, "the two requests were not batched together"
    assert r_small.status_code == 200, r_small.text  # batched with the failing one, still answered
    assert same(r_small.json()["results"], before["mortality"][:1])
    armed[0] = False
    r = client.post("/predict", json=big)  # the same request succeeds once memory is there
    assert r.status_code == 200
    assert leases(engine) == 0 and engine.batcher._queued_rows == 0
    assert_server_up(client, before)


# -- 30. restart on a missing or corrupt adapter -------------------------------------------------------------
def test_r30_missing_or_corrupt_active_adapter_at_start(tmp_path, artifacts, served_folder):
    from bedside.adapters.registry import Registry
    from bedside.adapters.registry.fsio import force_rmtree

    store = push_all(tmp_path / "store", artifacts[0])
    registry = Registry(store)

    def writable(path: Path) -> Path:
        path.parent.chmod(0o755)
        path.chmod(0o644)
        return path

    head = writable(registry.version_path("ner", "v1") / "head.safetensors")
    head.write_bytes(head.read_bytes()[: head.stat().st_size // 2])       # truncated
    weights = sorted(registry.version_path("relations", "v1").glob("*.safetensors"))
    flipped = writable(weights[-1])
    data = bytearray(flipped.read_bytes())
    data[-3] ^= 0x01                                                       # one bit flipped in a weight
    flipped.write_bytes(bytes(data))
    gone = registry.version_path("length_of_stay", "v1")
    gone.parent.chmod(0o755)
    force_rmtree(gone)                                                     # the active version is missing

    client, engine = build(store, served_folder)  # starts anyway
    try:
        r = predict(client, "mortality")
        assert r.status_code == 200 and r.json()["adapter"]["version"] == "v1"
        assert client.get("/readyz/mortality").status_code == 200
        tasks = client.get("/status").json()["tasks"]
        assert tasks["mortality"]["status"] == "ready"
        for task in ("ner", "relations", "length_of_stay"):
            assert tasks[task]["status"] != "ready", tasks[task]
            r = client.get(f"/readyz/{task}")
            assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
            assert_clear(predict(client, task), 503, "task_not_ready")
        assert "sha256" in tasks["relations"]["reason"]  # the bit flip is caught before loading
        assert engine.runtime.ready()  # BentoML /readyz: ready while at least one task serves
    finally:
        engine.close()


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
    for task, body in [("mortality", {"texts": [note]}), ("ner", {"texts": [f"chest pain {CANARY}"]}),
                       ("relations", {"items": [{**REL_ITEM, "text": REL_ITEM["text"] + " " + CANARY}]})]:
        assert send("/predict", json={"task": task, **body}).status_code == 200
    assert send("/extract", json={"text": f"chest pain treated with iv lasix {CANARY}"}).status_code == 200
    # invalid
    for payload in [{"task": "mortality", "texts": [" ".join([note] * 100)]}, {"task": CANARY, "texts": [note]},
                    {"task": "mortality", "texts": note}, {"task": "mortality", "texts": [note], CANARY: note},
                    {"task": "relations", "items": [{"text": note, "head": {"start": 0, "end": 5},
                                                     "tail": {"start": 90, "end": 95}}]},
                    {"task": "mortality", "texts": [note] * 100}]:
        assert 400 <= send("/predict", json=payload).status_code < 500
    for raw in [b'{"texts": ["' + CANARY.encode() + b'\xff"]}', b'{"texts": ["' + CANARY.encode() + b'"',
                b'{"texts": ["' + CANARY.encode() + b'\\udc00"]}']:
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

    def bad_decode(self, row, logits, context):
        raise KeyError(f"cannot decode {CANARY}")

    monkeypatch.setattr(Predictor, "decode", bad_decode)
    assert send("/predict", json={"task": "mortality", "texts": [note]}).status_code == 500
    assert send("/extract", json={"text": note}).status_code == 500
    # Nothing escapes the app: a server logs an escaped exception's traceback, message included.
    from bedside.service.app import create_app

    status = asyncio.run(asgi(create_app(engine.settings, lambda: engine), "/predict",
                              json.dumps({"task": "mortality", "texts": [note]}).encode()))
    assert status == 500
    monkeypatch.undo()

    captured = capsys.readouterr()
    # every record but the test's own HTTP client's (which logs the URLs it calls)
    records = [rec for rec in caplog.records if not rec.name.startswith("httpx")]
    assert any(rec.name.startswith("bedside") and rec.levelno >= logging.ERROR for rec in records), \
        "nothing was logged: the check would be vacuous"
    logged = "\n".join(logging.Formatter("%(name)s %(message)s").format(rec) for rec in records)
    for where, text in [("error bodies", "\n".join(bodies)), ("logs", logged),
                        ("log arguments", "\n".join(repr(rec.args) for rec in records)),
                        ("stdout", captured.out), ("stderr", captured.err),
                        ("metrics", generate_latest(REGISTRY).decode())]:
        assert CANARY.lower() not in text.lower(), f"the canary leaked into {where}"
    assert engine.runtime.registry.audit_entries() is not None

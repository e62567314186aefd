"""RELIABILITY.md rows on faults of the serving side: no adapter, swaps under load, a killed
worker, out of memory, a missing or corrupt adapter at start (docs/reliability.md has the row map)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from tests.service.conftest import build_client as build

from .conftest import (
    ADMIN,
    CANARY,
    TEXT,
    assert_clear,
    assert_server_up,
    idle,
    in_threads,
    leases,
    predict,
    push_all,
    same,
    timed_post,
)


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


@pytest.fixture()
def r27_server(tmp_path, artifacts, served_folder):
    """A real server whose batches wait long, so a kill lands mid-request: (process, url, log file)."""
    from bedside.service.server import server_env, start_server, stop_server
    from tests.service.conftest import free_port

    store = push_all(tmp_path / "store", artifacts[0])
    url = f"http://127.0.0.1:{free_port()}"
    # A long batch wait keeps requests in flight for ~1.5 s, so the kill lands mid-request.
    env = server_env(
        store=store, backbone=served_folder, device="cpu", threads=1, max_wait_ms=1500, max_batch_rows=4096
    )
    env["PYTHONUNBUFFERED"] = "1"  # the log is read while the server runs
    log_file = tmp_path / "server.log"
    process = start_server(int(url.rsplit(":", 1)[1]), env, log_file=log_file)
    try:
        yield process, url, log_file
    finally:
        stop_server(process)


def test_r27_killed_worker_fails_in_flight_requests_fast_and_restarts(r27_server):
    """Rows 27 and 37 (D7). BentoML (circus) keeps the listening socket in its arbiter and respawns a
    killed worker. In-flight requests get the connection closed at once (RemoteProtocolError);
    bedside makes the arbiter look for a dead worker every 0.5 s (BentoML's own: 10 s) and the new
    worker answer before it has loaded anything (503 ``starting``, /readyz 503), so probes and new
    requests get an answer within seconds instead of hanging until the model is back."""
    from bedside.service.server import wait_ready

    process, url, log_file = r27_server
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

    probes, slowest, deadline = [], 0.0, time.monotonic() + 90
    t0 = time.monotonic()
    new_request = httpx.post(f"{url}/predict", json=payload, timeout=10)  # sent while the worker is gone
    new_request_s = time.monotonic() - t0
    assert new_request.status_code in (200, 503), new_request.status_code
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            status = httpx.get(f"{url}/readyz", timeout=5.0).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        slowest = max(slowest, time.monotonic() - t0)
        probes.append(status)
        if status == 200:
            break
        time.sleep(0.2)
    assert probes[-1] == 200, f"the server did not come back: {probes[-5:]}"
    # The figures docs/reliability.md quotes ("Worker killed"), printed for `pytest -s`.
    print(
        f"r27: in-flight failed within {failed_within:.2f} s; new request {new_request.status_code} in "
        f"{new_request_s:.2f} s; slowest /readyz probe {slowest:.2f} s; ready again "
        f"{time.monotonic() - killed_at:.1f} s after the kill; probes {len(probes)}"
    )
    assert all(p in (503, "ConnectError") for p in probes[:-1]), probes  # answered or refused: no time-outs
    assert slowest < 4.0, f"a readiness probe waited {slowest:.1f} s for an answer"
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
@pytest.mark.parametrize(
    "error",
    [
        lambda: torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB {CANARY}"),
        lambda: RuntimeError(f"[enforce fail] DefaultCPUAllocator: not enough memory {CANARY}"),
    ],
    ids=["cuda_oom", "cpu_oom"],
)
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
    head.write_bytes(head.read_bytes()[: head.stat().st_size // 2])  # truncated
    weights = sorted(registry.version_path("relations", "v1").glob("*.safetensors"))
    flipped = writable(weights[-1])
    data = bytearray(flipped.read_bytes())
    data[-3] ^= 0x01  # one bit flipped in a weight
    flipped.write_bytes(bytes(data))
    gone = registry.version_path("length_of_stay", "v1")
    gone.parent.chmod(0o755)
    force_rmtree(gone)  # the active version is missing

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
        r = client.get("/ready")  # bedside's rule (all, the default) waits for the three that failed
        assert r.status_code == 503 and r.json()["waiting"] == ["length_of_stay", "ner", "relations"], r.text
    finally:
        engine.close()

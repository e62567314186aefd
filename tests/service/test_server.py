"""The service end to end against a REAL ``bentoml serve`` process (one per module, see conftest.live_server).

Only loopback traffic; every loop is bounded by a deadline and every request by a timeout.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bedside.service.bench.soak import REL_ITEMS as SOAK_REL_ITEMS
from bedside.service.bench.soak import TEXTS
from tests.service.conftest import ADMIN_TOKEN, PREDICT_TOKEN

TASKS = ("mortality", "length_of_stay", "ner", "relations")
REL_ITEMS = [
    *SOAK_REL_ITEMS,
    {
        "text": "vancomycin started for sepsis after blood culture",
        "head": {"start": 0, "end": 10},
        "tail": {"start": 23, "end": 29},
    },
]
CANARY = "PHI-CANARY-7f3a9c"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def inputs(task: str) -> list:
    return REL_ITEMS if task == "relations" else TEXTS


def body(task: str, items: list) -> dict:
    return {"task": task, "items" if task == "relations" else "texts": items}


def same_result(a: dict, b: dict, tol: float = 1e-4) -> bool:
    """Labels and entity spans exactly, probabilities and scores within ``tol``."""
    if "entities" in a or "entities" in b:
        ea, eb = a.get("entities"), b.get("entities")
        return (
            ea is not None
            and eb is not None
            and len(ea) == len(eb)
            and all(
                (x["text"], x["type"], x["start"], x["end"]) == (y["text"], y["type"], y["start"], y["end"])
                and abs(x["score"] - y["score"]) <= tol
                for x, y in zip(ea, eb)
            )
        )
    return (
        a["label"] == b["label"]
        and a["probabilities"].keys() == b["probabilities"].keys()
        and all(abs(a["probabilities"][k] - b["probabilities"][k]) <= tol for k in a["probabilities"])
    )


def samples(text: str, name: str, **labels) -> dict[str, float]:
    """``name``'s samples matching ``labels``, keyed by their remaining label values."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                rest = [v for k, v in sorted(sample.labels.items()) if k not in labels]
                out[",".join(rest)] = sample.value
    return out


def predict(client: httpx.Client, task: str, items: list) -> dict:
    r = client.post("/predict", json=body(task, items))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


def singles(client: httpx.Client, task: str) -> list[dict]:
    """Every input of ``task`` answered alone (one item per request)."""
    return [predict(client, task, [item])["results"][0] for item in inputs(task)]


def wait_for_version(http: httpx.Client, task: str, version: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get("/status").json()["tasks"][task].get("version") == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"{task} did not switch to {version} within {timeout} s")


# -- 1. every task, with provenance --------------------------------------------------------------
def test_all_tasks_answer_with_provenance(live_server, http):
    from bedside.adapters.registry import Registry

    registry = Registry(live_server.store)
    assert http.get("/readyz").status_code == 200
    status = http.get("/status").json()
    assert status["base_fingerprint"].startswith("sha256:") and status["device"] == "cpu"
    for task in TASKS:
        assert http.get(f"/readyz/{task}").status_code == 200
        items = inputs(task)[:3]
        data = predict(http, task, items)
        active = registry.active(task)
        source = data["adapter"]
        assert data["task"] == task and len(data["results"]) == len(items)
        assert (source["task"], source["version"], source["sha256"]) == (task, active.version, active.sha256)
        assert source["base_fingerprint"] == status["base_fingerprint"]
        assert source["service_version"] == status["service_version"] and source["backend"] == "torch"
        for item, result in zip(items, data["results"]):
            if task == "ner":
                for e in result["entities"]:
                    assert item[e["start"] : e["end"]] == e["text"] and e["type"] in {"problem", "test", "treatment"}
            else:
                assert result["label"] in result["probabilities"]
                assert abs(sum(result["probabilities"].values()) - 1) < 1e-4

    r = http.post("/extract", json={"text": "chest pain treated with iv lasix and aspirin ."})
    assert r.status_code == 200, r.text
    data = r.json()
    assert {"entities", "relations", "adapters"} <= set(data)
    ner_source = data["adapters"][0]
    assert ner_source["task"] == "ner" and ner_source["base_fingerprint"] == status["base_fingerprint"]
    assert {a["task"] for a in data["adapters"]} <= {"ner", "relations"}


# -- 2. 32 concurrent mixed-task clients ---------------------------------------------------------
def test_concurrent_mixed_clients_match_single_requests(live_server, http):
    expected = {task: singles(http, task) for task in TASKS}

    def client_run(seed: int) -> list[tuple[str, list[int], dict]]:
        rng = random.Random(seed)
        out = []
        with httpx.Client(base_url=live_server.url, headers=live_server.predict, timeout=TIMEOUT) as client:
            for task in rng.sample(TASKS, len(TASKS)) + [rng.choice(TASKS)]:
                picks = rng.sample(range(len(inputs(task))), rng.randint(1, 3))
                r = client.post("/predict", json=body(task, [inputs(task)[i] for i in picks]))
                out.append((task, picks, {"status": r.status_code, "json": r.json()}))
        return out

    with ThreadPoolExecutor(32) as pool:
        runs = list(pool.map(client_run, range(32), timeout=60))
    answers = [a for run in runs for a in run]
    assert len(answers) == 32 * 5
    for task, picks, answer in answers:
        assert answer["status"] == 200, answer
        assert answer["json"]["adapter"]["task"] == task
        for i, result in zip(picks, answer["json"]["results"], strict=True):
            assert same_result(result, expected[task][i]), (task, i, result, expected[task][i])


# -- 3. hot swaps under continuous mixed load ----------------------------------------------------
def expected_by_seed(served_folder, artifacts, task: str) -> dict[int, list[dict]]:
    """What each seed's artifact answers for ``task``'s inputs, predicted in this process."""
    from bedside.adapters.artifact import attach, load_artifact
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.multi import MultiAdapterModel
    from bedside.adapters.predict import Predictor

    model = MultiAdapterModel(load_backbone(str(served_folder))).eval()
    out = {}
    for seed in (0, 1):
        attach(model, load_artifact(artifacts[seed][task]), f"seed{seed}")
        model.eval()
        out[seed] = Predictor(model, f"seed{seed}").predict(list(inputs(task)))
    return out


def test_hot_swaps_under_load_never_fail_and_match_versions(live_server, http, artifacts, served_folder):
    from bedside.adapters.registry import Registry

    task = "length_of_stay"  # its two seeds differ by > 0.03 on every text
    by_seed = expected_by_seed(served_folder, artifacts, task)
    assert all(not same_result(a, b, tol=1e-3) for a, b in zip(by_seed[0], by_seed[1])), (
        "the two seeds must answer differently for every text"
    )
    registry = Registry(live_server.store)
    v_seed0 = registry.push(artifacts[0][task], task=task, actor="test").version
    v_seed1 = registry.push(artifacts[1][task], task=task, actor="test").version
    seed_of_sha = {registry.show(task, v_seed0).sha256: 0, registry.show(task, v_seed1).sha256: 1}
    seed_of = {info.version: seed_of_sha[info.sha256] for info in registry.list(task) if info.sha256 in seed_of_sha}
    # Activate seed1's version first: that is a change whatever is active now.
    plan = [(v_seed1, "admin"), (v_seed0, "store"), (v_seed1, "admin"), (v_seed0, "store"), (v_seed1, "admin")]

    stop = threading.Event()
    deadline = time.monotonic() + 60
    records: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def load(worker: int) -> None:
        rng = random.Random(100 + worker)
        with httpx.Client(base_url=live_server.url, headers=live_server.predict, timeout=TIMEOUT) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                t = task if rng.random() < 0.6 else rng.choice([x for x in TASKS if x != task])
                picks = rng.sample(range(len(inputs(t))), rng.randint(1, 3))
                try:
                    r = client.post("/predict", json=body(t, [inputs(t)[i] for i in picks]))
                    answer = (r.status_code, r.json() if r.status_code == 200 else r.text[:200])
                except httpx.HTTPError as exc:
                    answer = (-1, repr(exc))
                with lock:
                    records.append((t, answer[0], {"picks": picks, "answer": answer[1]}))

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        for version, path in plan:
            if path == "admin":
                r = http.post(f"/admin/adapters/{task}/{version}/activate", headers=live_server.admin)
                assert r.status_code == 200, r.text
                assert r.json()["active"]["version"] == version
            else:  # another process changes the store; the server notices by polling
                registry.activate(task, version, actor="test")
            wait_for_version(http, task, version)
            time.sleep(0.6)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
    assert not any(thread.is_alive() for thread in threads)

    failures = [r for r in records if r[1] != 200]
    assert not failures, failures[:5]
    seen = set()
    for t, _, record in records:
        answer = record["answer"]
        assert answer["adapter"]["task"] == t
        if t != task:
            continue
        version = answer["adapter"]["version"]
        assert version in seed_of, version
        seen.add(version)
        expected = by_seed[seed_of[version]]
        for i, result in zip(record["picks"], answer["results"], strict=True):
            assert same_result(result, expected[i]), (version, i, result, expected[i])
    assert {v_seed0, v_seed1} <= seen, seen
    assert sum(1 for t, _, _ in records if t == task) >= 20
    assert not [e for e in registry.audit_entries() if e.task == task and e.action == "activate" and e.outcome != "ok"]
    swaps = samples(http.get("/metrics").text, "bedside_adapter_swaps_total", task=task)
    assert swaps.get("ok", 0) >= 1 + len(plan) and swaps.get("error", 0) == 0, swaps


# -- 4. /metrics is valid Prometheus text with the bedside families -------------------------------
FAMILIES = [
    "bedside_requests_total",
    "bedside_request_duration_seconds",
    "bedside_batch_rows",
    "bedside_queue_wait_seconds",
    "bedside_forward_duration_seconds",
    "bedside_tokenize_duration_seconds",
    "bedside_active_adapter_info",
    "bedside_resident_adapters",
    "bedside_adapter_swaps_total",
    "bedside_adapter_loads_total",
    "bedside_task_ready",
]


def test_metrics_pass_promtool_and_hold_bedside_families(live_server, http):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (CI installs it via .ci/run: apt-get install prometheus)")
    for task in TASKS:
        predict(http, task, inputs(task)[:2])
    text = http.get("/metrics").text
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}"
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    missing = [f for f in FAMILIES if f not in types]
    assert not missing, f"missing metric families: {missing}"
    status = http.get("/status").json()["tasks"]
    for task in TASKS:
        assert samples(text, "bedside_requests_total", task=task, outcome="ok").get("", 0) >= 1, task
        active = {
            version for version, value in samples(text, "bedside_active_adapter_info", task=task).items() if value == 1
        }
        assert active == {status[task]["version"]}, (task, active)
        assert samples(text, "bedside_task_ready", task=task) == {"": 1.0}, task
    assert samples(text, "bedside_resident_adapters")[""] >= len(TASKS)


# -- 5. a PHI canary never leaves the request --------------------------------------------------------
def test_phi_canary_never_in_logs_metrics_or_error_bodies(live_server, http, artifacts, tmp_path):
    url, hdr = live_server.url, {"Content-Type": "application/json"}
    log_before = len(live_server.log_text())
    note = f"{CANARY} septic shock"
    valid = [
        body("mortality", [note]),
        body("ner", [f"chest pain {CANARY}"]),
        body(
            "relations",
            [{"text": f"lasix for edema {CANARY}", "head": {"start": 0, "end": 5}, "tail": {"start": 10, "end": 15}}],
        ),
    ]
    invalid = [
        json.dumps({"task": "mortality", "texts": [note]})[:-3].encode(),  # malformed JSON
        json.dumps({"task": "mortality", "texts": note}).encode(),  # wrong type
        json.dumps({"task": "mortality", "texts": [note, 7]}).encode(),  # wrong item type
        json.dumps({"task": CANARY, "texts": [note]}).encode(),  # unknown task
        json.dumps({"task": CANARY * 5, "texts": [note]}).encode(),  # task too long
        json.dumps({"task": "mortality", "texts": [" ".join([note] * 12000)]}).encode(),  # over a text's characters
        json.dumps({"task": "mortality", "texts": [note], "patient": note}).encode(),  # extra field
        json.dumps({"task": "mortality", "texts": [note], CANARY: 1}).encode(),  # extra field named PHI
        json.dumps({"task": "ner", "text": note}).encode(),  # missing field
        json.dumps(
            {
                "task": "mortality",
                "items": [{"text": note, "head": {"start": 0, "end": 1}, "tail": {"start": 2, "end": 3}}],
            }
        ).encode(),
        b'{"task": "mortality", "texts": ["' + CANARY.encode() + b' \xff\xfe"]}',  # not UTF-8
        b'{"task": "mortality", "texts": ["' + CANARY.encode() + b' \\ud800"]}',  # lone surrogate
        json.dumps({"task": "mortality", "texts": [note] * 100}).encode(),  # too many items
        json.dumps({"task": "mortality", "texts": [note * 8000]}).encode(),  # body over the limit
    ]
    failing = [  # valid JSON that fails in the encoder
        body(
            "relations", [{"text": f"lasix {CANARY}", "head": {"start": 0, "end": 5}, "tail": {"start": 50, "end": 60}}]
        ),
        body(
            "relations", [{"text": f"lasix {CANARY}", "head": {"start": 0, "end": 5}, "tail": {"start": 2, "end": 8}}]
        ),
    ]
    bodies_seen = []
    with httpx.Client(base_url=url, headers=live_server.predict, timeout=TIMEOUT) as client:
        for payload in valid:
            r = client.post("/predict", json=payload)
            assert r.status_code == 200, r.text
        r = client.post("/extract", json={"text": note})
        assert r.status_code == 200, r.text
        for raw in invalid:
            r = client.post("/predict", content=raw, headers=hdr)
            assert 400 <= r.status_code < 500, (r.status_code, r.text)
            bodies_seen.append(r.text + str(r.headers))
        for path in ("/predict", "/extract"):
            r = client.post(path, content=f"text={CANARY}", headers={"Content-Type": "text/plain"})
            assert r.status_code == 415, r.text
            bodies_seen.append(r.text)
        r = client.post("/extract", json={"text": " ".join([note] * 12000)})
        assert r.status_code == 413, r.text
        bodies_seen.append(r.text)
        for payload in failing:
            r = client.post("/predict", json=payload)
            assert r.status_code in (400, 422), r.text
            bodies_seen.append(r.text)
        # a token that is PHI-like, and an admin upload whose smoke examples hold the canary and fail
        r = client.post("/predict", json=valid[0], headers={"Authorization": f"Bearer {CANARY}"})
        assert r.status_code == 401
        bodies_seen.append(r.text + str(r.headers))
    folder = tmp_path / "phi-artifact"
    shutil.copytree(artifacts[0]["mortality"], folder)
    examples = [{"input": note, "expected": {"label": label}} for label in ("survived", "died")]
    (folder / "examples.json").write_text(json.dumps(examples))
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir())]
    r = httpx.post(
        f"{url}/admin/adapters/mortality",
        params={"activate": "true"},
        files=files,
        headers=live_server.admin,
        timeout=TIMEOUT,
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    bodies_seen.append(r.text)

    leaked = [b for b in bodies_seen if CANARY.lower() in b.lower()]
    assert not leaked, leaked
    assert CANARY.lower() not in http.get("/metrics").text.lower()
    from bedside.adapters.registry import Registry

    assert all(CANARY.lower() not in e.model_dump_json().lower() for e in Registry(live_server.store).audit_entries())
    time.sleep(0.5)  # let the access log catch up
    log = live_server.log_text()[log_before:]
    assert " /predict 422 " in log and " /predict 400 " in log, "the server log does not record these requests"
    assert CANARY.lower() not in log.lower()


# -- 6. admin auth -------------------------------------------------------------------------------
def test_admin_upload_needs_an_admin_token_and_denials_are_audited(live_server, artifacts):
    from bedside.adapters.registry import Registry

    folder = artifacts[1]["relations"]
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir())]
    url = f"{live_server.url}/admin/adapters/relations"
    before = len(Registry(live_server.store).audit_entries())
    r = httpx.post(url, files=files, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = httpx.post(url, files=files, headers=live_server.predict, timeout=TIMEOUT)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = httpx.post(url, files=files, headers=live_server.admin, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    stored = r.json()["version"]
    assert stored["task"] == "relations" and not stored["active"]

    entries = Registry(live_server.store).audit_entries()[before:]
    denied = [e for e in entries if e.outcome == "denied"]
    assert [(e.action, e.task) for e in denied] == [("push", "relations")] * 2
    assert {e.actor for e in denied} == {"anonymous", denied[1].actor} and denied[1].actor.startswith("token:")
    assert PREDICT_TOKEN not in json.dumps([e.model_dump(mode="json") for e in entries])
    assert any(e.outcome == "ok" and e.action == "push" and e.version == stored["version"] for e in entries)


# -- 7. `bedside adapters upload --activate` -------------------------------------------------------
def test_cli_upload_activates_on_the_running_server(live_server, http, artifacts):
    folder = artifacts[1]["mortality"]
    env = {**os.environ, "BEDSIDE_ADMIN_TOKEN": ADMIN_TOKEN, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bedside.cli",
            "adapters",
            "upload",
            str(folder),
            "--url",
            live_server.url,
            "--activate",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "activated" in result.stdout + result.stderr
    from bedside.adapters.registry import Registry

    active = Registry(live_server.store).active("mortality")
    assert active.version != "v1"  # the upload, not the fixture's version
    assert http.get("/status").json()["tasks"]["mortality"]["version"] == active.version
    source = predict(http, "mortality", TEXTS[:1])["adapter"]
    assert (source["version"], source["sha256"]) == (active.version, active.sha256)
    # the replaced version (unloaded at once: resident_cap=0) no longer reports itself active
    info = samples(http.get("/metrics").text, "bedside_active_adapter_info", task="mortality")
    assert {v for v, value in info.items() if value == 1} == {active.version}, info


# -- 8. the demo's curl examples ------------------------------------------------------------------
def test_demo_curl_examples_answer_with_provenance(live_server, tmp_path):
    from bedside.service.cli import curl_examples

    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the demo's examples")
    commands = curl_examples(live_server.url, tmp_path)
    assert len(commands) == 6 and "whole-note.json" in commands[-1]
    for command in commands:
        # the module's server requires predict tokens; the demo's does not: add the header only
        argv = shlex.split(command) + ["-H", f"Authorization: Bearer {PREDICT_TOKEN}", "--max-time", "30"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=40)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        sources = [answer["adapter"]] if "adapter" in answer else answer["adapters"]
        assert sources, answer
        for source in sources:
            assert {"task", "version", "sha256", "base_fingerprint", "service_version", "backend"} <= set(source)
        if "results" in answer:
            assert len(answer["results"]) == 1
        else:
            assert {"entities", "relations"} <= set(answer)
    assert json.loads(result.stdout)["note"]["windows"] > 1  # the last one: the whole note, in windows


def test_the_python_client_sends_whole_notes_and_typed_admin_calls(live_server):
    from bedside.service.client import BedsideClient, BedsideError
    from bedside.service.examples import NOTE, relation_item

    with BedsideClient(live_server.url, token=PREDICT_TOKEN) as client:
        (ner,) = client.predict("ner", [NOTE]).results
        assert ner.windows > 1 and ner.strategy == "windows"
        assert all(NOTE[e.start : e.end] == e.text for e in ner.entities)
        (risk,) = client.predict("mortality", [NOTE]).results
        assert risk.strategy in ("truncate", "head_tail", "chunks") and abs(sum(risk.probabilities.values()) - 1) < 1e-4
        (pair,) = client.relations([relation_item()]).results
        assert pair.strategy == "local window" and pair.label in pair.probabilities
        extracted = client.extract(NOTE)
        assert [e.model_dump() for e in extracted.entities] == [e.model_dump() for e in ner.entities]
        assert extracted.adapters[0].task == "ner" and extracted.note.windows == ner.windows
    with BedsideClient(live_server.url, token=ADMIN_TOKEN) as admin:
        with pytest.raises(BedsideError) as conflict:
            admin.activate("mortality", "v1", expected="v9")
        assert conflict.value.status == 409 and conflict.value.code == "conflict"

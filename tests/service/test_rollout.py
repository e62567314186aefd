"""Shadow and canary versions in the served model: a shadow never changes an answer and never
fails one; a canary answers its share (stable per request id); promote and abort are atomic
under load; every step is audited."""

from __future__ import annotations

import math
import threading
import time

import pytest

from bedside.adapters.registry import Registry

ADMIN = {"Authorization": "Bearer admin-secret"}
NOTE = (
    "ADMISSION NOTE\nHPI: septic shock , intubated in the icu .\n"
    "Plan: aspirin and heparin for atrial fibrillation ; follow up in clinic .\n"
)
REQUESTS = [
    ("/predict", {"task": "mortality", "texts": [NOTE, "routine follow up , stable"]}),
    ("/predict", {"task": "length_of_stay", "texts": [NOTE]}),
    ("/predict", {"task": "ner", "texts": [NOTE]}),
    (
        "/predict",
        {
            "task": "relations",
            "items": [{"text": NOTE, "head": {"start": 63, "end": 70}, "tail": {"start": 75, "end": 81}}],
        },
    ),
    ("/extract", {"text": NOTE}),
]


@pytest.fixture()
def two_versions(store, artifacts):
    """v1 (seed 0) active for every task, v2 (seed 1: different answers) stored beside it."""
    registry = Registry(store)
    for task, folder in artifacts[1].items():
        registry.push(folder, task=task)
    return store


def wait_compared(client, task: str, n: int, timeout: float = 10.0) -> dict:
    """The shadow report once ``n`` requests of ``task`` were compared (or counted otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        report = client.get(f"/admin/adapters/{task}/shadow", headers=ADMIN).json()
        done = sum(sum(p["requests"].values()) for p in report["pairs"])
        if done >= n or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def test_a_shadow_changes_no_answer_by_a_byte_and_reports_its_agreement(two_versions, live_client):
    client, engine = live_client()
    before = [client.post(path, json=body) for path, body in REQUESTS]
    assert all(r.status_code == 200 for r in before), [r.text for r in before]
    for task in ("mortality", "length_of_stay", "ner", "relations"):
        r = client.post(f"/admin/adapters/{task}/v2/shadow", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["rollout"] == {"mode": "shadow", "version": "v2", "percent": 0.0}
    after = [client.post(path, json=body) for path, body in REQUESTS]
    assert [r.content for r in after] == [r.content for r in before]  # byte-identical
    mortality = wait_compared(client, "mortality", 1)
    assert mortality["rollout"]["mode"] == "shadow"
    (pair,) = mortality["pairs"]
    assert (pair["active"], pair["candidate"]) == ("v1", "v2")
    assert pair["requests"]["compared"] == 1 and pair["items_compared"] == 2
    assert 0 <= pair["label_agreement"] <= 1 and pair["mean_abs_probability_difference"] > 0  # seeds differ
    assert sum(pair["candidate_scores"].values()) == 2
    ner = wait_compared(client, "ner", 2)  # /predict ner and /extract's ner
    (pair,) = ner["pairs"]
    assert pair["requests"]["compared"] == 2 and pair["label_agreement"] is None
    found = pair["entities"]
    answered = len(after[2].json()["results"][0]["entities"]) + len(after[4].json()["entities"])
    assert found["both"] + found["active_only"] == answered  # every entity the active version gave
    metrics = client.get("/metrics").text
    assert 'bedside_shadow_requests_total{active="v1",candidate="v2",outcome="compared",task="mortality"}' in metrics
    assert 'bedside_rollout_info{mode="shadow",task="mortality",version="v2"} 1.0' in metrics
    assert "septic" not in metrics and "septic" not in str(mortality)  # counts only, never text


def failing_shadow(monkeypatch, engine, slot_of, delay: float = 0.0, fail: bool = True):
    """Forwards holding the candidate's rows fail (or take ``delay`` longer); others run as usual."""
    run = engine.batcher.run

    def forward(batch):
        if any(r.slot == slot_of() for r in batch.runs):
            if delay:
                time.sleep(delay)
            if fail:
                raise RuntimeError("the shadow's forward broke")
        return run(batch)

    monkeypatch.setattr(engine.batcher, "run", forward)


@pytest.mark.parametrize("how", ["raises", "times_out"])
def test_a_shadow_that_raises_or_times_out_leaves_every_answer_200(two_versions, live_client, monkeypatch, how):
    client, engine = live_client(shadow_timeout_s=0.2)
    assert client.post("/admin/adapters/mortality/v2/shadow", headers=ADMIN).status_code == 200
    state = engine.runtime.states["mortality"]
    failing_shadow(
        monkeypatch,
        engine,
        lambda: state.candidate.slot,
        delay=0.5 if how == "times_out" else 0.0,
        fail=how == "raises",
    )
    answers = [client.post("/predict", json={"task": "mortality", "texts": [NOTE]}) for _ in range(4)]
    assert [r.status_code for r in answers] == [200] * 4
    assert {r.json()["adapter"]["version"] for r in answers} == {"v1"}
    report = wait_compared(client, "mortality", 4)
    counted = report["pairs"][0]["requests"]
    assert counted["compared"] == 0
    assert counted["failed" if how == "raises" else "timeout"] >= 3


def test_shadow_rows_are_dropped_first_when_the_queue_is_long(two_versions, live_client):
    client, engine = live_client(shadow_queue_rows=0)
    assert client.post("/admin/adapters/mortality/v2/shadow", headers=ADMIN).status_code == 200
    assert client.post("/predict", json={"task": "mortality", "texts": [NOTE]}).status_code == 200
    assert wait_compared(client, "mortality", 1)["pairs"][0]["requests"]["dropped"] == 1


def binomial_bounds(n: int, p: float, sds: float = 4.5) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - sds * sd, n * p + sds * sd


def test_a_canary_answers_its_share_and_a_request_id_always_gets_the_same_version(two_versions, live_client):
    client, engine = live_client()
    r = client.post("/admin/adapters/mortality/v2/canary", params={"percent": 10}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert engine.runtime.states["mortality"].as_dict()["rollout"] == {
        "mode": "canary",
        "version": "v2",
        "percent": 10.0,
    }
    body = {"task": "mortality", "texts": ["routine follow up"]}
    low, high = binomial_bounds(2000, 0.10)
    random_split = []  # no request id: the route each of 2,000 requests would lease (no HTTP: fast)
    for _ in range(2000):
        with engine.runtime.cache.lease("mortality") as route:
            random_split.append(route.serving.info.version)
    assert low <= random_split.count("v2") <= high
    assert {client.post("/predict", json=body).json()["adapter"]["version"] for _ in range(60)} == {"v1", "v2"}
    by_id = []  # the id-stable split counted on the leases too; HTTP must answer a sample of ids alike
    for i in range(2000):
        with engine.runtime.cache.lease("mortality", f"req-{i}") as route:
            by_id.append(route.serving.info.version)
    assert low <= by_id.count("v2") <= high
    over_http = [
        client.post("/predict", json=body, headers={"X-Request-ID": f"req-{i}"}).json()["adapter"]["version"]
        for i in range(200)
    ]
    assert over_http == by_id[:200] and "v2" in over_http
    for i in (0, 1, 2, 3):  # the same id lands on the same side every time
        again = {
            client.post("/predict", json=body, headers={"X-Request-ID": f"req-{i}"}).json()["adapter"]["version"]
            for _ in range(20)
        }
        assert again == {by_id[i]}
    metrics = client.get("/metrics").text
    assert 'bedside_version_requests_total{outcome="ok",role="canary",task="mortality",version="v2"}' in metrics
    assert 'bedside_canary_percent{task="mortality",version="v2"} 10.0' in metrics
    assert 'bedside_answer_score_count{task="mortality",version="v2"}' in metrics


def hammer(client, stop: threading.Event, seen: list, failures: list) -> None:
    body = {"task": "mortality", "texts": ["septic shock , intubated"]}
    while not stop.is_set():
        r = client.post("/predict", json=body)
        if r.status_code != 200:
            failures.append(r.status_code)
        else:
            seen.append(r.json()["adapter"]["version"])


@pytest.mark.parametrize("finish", ["promote", "abort"])
def test_promote_and_abort_are_atomic_under_load(two_versions, live_client, finish):
    client, engine = live_client(resident_cap=0)
    stop, seen, failures = threading.Event(), [], []
    threads = [threading.Thread(target=hammer, args=(client, stop, seen, failures)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        assert (
            client.post("/admin/adapters/mortality/v2/canary", params={"percent": 50}, headers=ADMIN).status_code == 200
        )
        time.sleep(0.5)
        assert client.post(f"/admin/adapters/mortality/{finish}", headers=ADMIN).status_code == 200
        mark = len(seen)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert set(seen) == {"v1", "v2"}
    after = set(seen[mark + 8 :])  # requests leased before the flip may still finish on either version
    assert after == ({"v2"} if finish == "promote" else {"v1"})
    entries = [(e.action, e.version, e.outcome) for e in Registry(two_versions).audit_entries()]
    assert entries[-2:] == [("canary", "v2", "ok"), (finish, "v2", "ok")]
    client.post("/predict", json={"task": "mortality", "texts": ["stable"]})  # a lease's end frees what is retired
    assert [r.info.version for r in engine.runtime.residents.values() if r.task == "mortality"] == [
        "v2" if finish == "promote" else "v1"
    ]


def test_every_rollout_step_is_audited_and_refusals_too(two_versions, live_client):
    client, _ = live_client()
    assert client.post("/admin/adapters/mortality/v1/shadow", headers=ADMIN).status_code == 409  # the active one
    assert client.post("/admin/adapters/mortality/v2/canary", params={"percent": 0}, headers=ADMIN).status_code == 422
    assert client.post("/admin/adapters/mortality/abort", headers=ADMIN).status_code == 404
    assert client.post("/admin/adapters/mortality/v2/shadow").status_code == 401
    assert client.post("/admin/adapters/mortality/v2/shadow", headers=ADMIN).status_code == 200
    assert client.post("/admin/adapters/mortality/v2/canary", params={"percent": 5}, headers=ADMIN).status_code == 200
    assert client.post("/admin/adapters/mortality/promote", headers={**ADMIN, "If-Match": "v1"}).status_code == 200
    entries = [(e.action, e.version, e.outcome) for e in Registry(two_versions).audit_entries()]
    assert entries[-6:] == [
        ("shadow", "v1", "refused"),
        ("abort", None, "refused"),
        ("shadow", "v2", "denied"),
        ("shadow", "v2", "ok"),
        ("canary", "v2", "ok"),
        ("promote", "v2", "ok"),
    ]


@pytest.mark.parametrize("percent", ["nan", "inf", "1e309", "100", "0", "-0", "abc", ""])
def test_a_canary_share_that_is_no_percentage_is_422_naming_the_parameter(two_versions, live_client, percent):
    client, engine = live_client()
    r = client.post("/admin/adapters/mortality/v2/canary", params={"percent": percent}, headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["message"].startswith("query.percent: ")  # not an "(unknown field)"
    assert engine.runtime.states["mortality"].rollout is None

"""The predict API in process: shapes, provenance, errors."""

from __future__ import annotations

import pytest

ADMIN = {"Authorization": "Bearer admin-secret"}
REL_ITEM = {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}}


@pytest.fixture()
def client(make_client):
    client, _ = make_client()
    return client


def test_all_four_tasks_answer_with_provenance(client):
    for task, body in [
        ("mortality", {"texts": ["septic shock , intubated", "routine follow up"]}),
        ("length_of_stay", {"texts": ["admitted for surgery"]}),
        ("ner", {"texts": ["Chest pain treated with IV lasix ."]}),
        ("relations", {"items": [REL_ITEM]}),
    ]:
        r = client.post("/predict", json={"task": task, **body})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["adapter"]["task"] == task and data["adapter"]["version"] == "v1"
        assert data["adapter"]["sha256"] and data["adapter"]["base_fingerprint"].startswith("sha256:")
        assert data["adapter"]["backend"] == "torch" and data["adapter"]["service_version"]
        for result in data["results"]:
            if task == "ner":
                for e in result["entities"]:
                    text = body["texts"][0]
                    assert text[e["start"] : e["end"]] == e["text"] and e["type"] in {"problem", "test", "treatment"}
            else:
                assert result["label"] in result["probabilities"]
                assert abs(sum(result["probabilities"].values()) - 1) < 1e-4


def test_extract_runs_ner_then_relations(client):
    r = client.post("/extract", json={"text": "Chest pain treated with IV lasix and aspirin ."})
    assert r.status_code == 200, r.text
    data = r.json()
    assert {"entities", "relations", "adapters"} <= set(data)
    assert data["adapters"][0]["task"] == "ner"


def test_readiness_per_task_and_status(client):
    assert client.get("/readyz/mortality").json()["status"] == "ready"
    assert client.get("/status").json()["tasks"]["relations"]["version"] == "v1"

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


def test_docs_and_openapi_follow_the_predict_token(make_client):
    client, _ = make_client(predict_tokens="predict-secret")
    for path in ("/docs", "/openapi.json"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer predict-secret"}).status_code == 200, path
    open_client, _ = make_client()
    assert open_client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("rule", "status", "waiting"),
    [("all", 200, []), ("any", 200, []), ("mortality,relations", 200, []), ("mortality,ner", 503, ["ner"])],
)
def test_ready_answers_by_its_rule(make_client, rule, status, waiting):
    """A deactivated task is off on purpose: ``all`` does not wait for it (every pod would leave
    the load balancer for one switched-off task); a rule that names it does."""
    client, _ = make_client(ready_tasks=rule)
    assert client.get("/ready").status_code == 200  # every task serves
    assert client.post("/admin/adapters/ner/deactivate", headers=ADMIN).status_code == 200
    r = client.get("/ready")
    assert r.status_code == status and r.json()["waiting"] == waiting, r.text
    assert client.get("/readyz/ner").status_code == 503


def test_ready_waits_for_a_named_task_that_does_not_exist(make_client):
    client, _ = make_client(ready_tasks="mortality,sepsis")
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["waiting"] == ["sepsis"]


def test_metrics_name_the_version_the_task_and_requests_refused_before_the_handler(make_client):
    from prometheus_client import REGISTRY

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    client, _ = make_client()
    latency = value("bedside_request_duration_seconds_count", task="mortality", endpoint="predict", version="v1")
    queued = value("bedside_queue_wait_seconds_count", task="mortality")
    rows = value("bedside_batch_task_rows_count", task="mortality")
    unparsed = value("bedside_requests_total", task="unparsed", outcome="client_error")
    unknown = value("bedside_requests_total", task="unknown", outcome="client_error")
    assert client.post("/predict", json={"task": "mortality", "texts": ["routine follow up"]}).status_code == 200
    assert value("bedside_request_duration_seconds_count", task="mortality", endpoint="predict", version="v1") == (
        latency + 1
    )
    assert value("bedside_queue_wait_seconds_count", task="mortality") == queued + 1
    assert value("bedside_batch_task_rows_count", task="mortality") == rows + 1
    # refused by the body-size middleware before any handler ran
    r = client.post("/predict", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert value("bedside_requests_total", task="unparsed", outcome="client_error") == unparsed + 1
    # refused by the handler before the task was read: counted once, as an unknown task
    r = client.post("/predict", content=b"x", headers={"Content-Type": "application/vnd.bentoml+pickle"})
    assert r.status_code == 415
    assert value("bedside_requests_total", task="unknown", outcome="client_error") == unknown + 1
    assert value("bedside_requests_total", task="unparsed", outcome="client_error") == unparsed + 1


def _documented(model, data: dict) -> None:
    """``data`` is exactly what ``model`` documents: it validates, and nothing is left out of the model."""
    parsed = model.model_validate(data)
    assert parsed.model_dump(mode="json", exclude_unset=True) == data


def test_the_openapi_examples_are_whole_notes_and_answer_as_documented(client):
    from bedside.service.schemas import ExtractResponse, PredictResponse

    spec = client.get("/openapi.json").json()
    for path, model in (("/predict", PredictResponse), ("/extract", ExtractResponse)):
        operation = spec["paths"][path]["post"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        for name, example in examples.items():
            texts = example["value"].get("texts") or [i["text"] for i in example["value"].get("items", [])]
            texts = texts or [example["value"]["text"]]
            assert all(t.count("\n\n") >= 5 and len(t.split()) >= 300 for t in texts), name  # whole notes
            r = client.post(path, json=example["value"])
            assert r.status_code == 200, (name, r.text)
            _documented(model, r.json())
            if path == "/predict" and example["value"]["task"] == "ner":
                (result,) = r.json()["results"]
                assert result["windows"] > 1 and all(
                    texts[0][e["start"] : e["end"]] == e["text"] for e in result["entities"]
                )

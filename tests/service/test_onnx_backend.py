"""The service on ONNX Runtime (BEDSIDE_BACKEND=onnx): same API and answers as torch, swaps, cache."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("onnxruntime")

from tests.service.test_api import REL_ITEM

BODIES = [
    ("mortality", {"texts": ["septic shock , intubated", "routine follow up", "stable"]}),
    ("length_of_stay", {"texts": ["admitted for surgery", "chest pain treated with iv lasix after troponin"]}),
    ("ner", {"texts": ["Chest pain treated with IV lasix .", "no fever , cough improved"]}),
    (
        "relations",
        {"items": [REL_ITEM, {**REL_ITEM, "head": {"start": 20, "end": 25}, "tail": {"start": 0, "end": 5}}]},
    ),
]


def _answers(client):
    out = {}
    for task, body in BODIES:
        r = client.post("/predict", json={"task": task, **body})
        assert r.status_code == 200, r.text
        out[task] = r.json()
    return out


def _assert_same(onnx_answers, torch_answers, tol):
    for task, data in onnx_answers.items():
        expected = torch_answers[task]
        assert data["adapter"]["version"] == expected["adapter"]["version"]
        assert data["adapter"]["sha256"] == expected["adapter"]["sha256"]
        for got, want in zip(data["results"], expected["results"], strict=True):
            if task == "ner":
                assert [(e["start"], e["end"], e["type"]) for e in got["entities"]] == [
                    (e["start"], e["end"], e["type"]) for e in want["entities"]
                ]
                assert all(abs(g["score"] - w["score"]) <= tol for g, w in zip(got["entities"], want["entities"]))
            else:
                assert got["label"] == want["label"]
                assert max(abs(got["probabilities"][k] - v) for k, v in want["probabilities"].items()) <= tol


@pytest.fixture()
def onnx_cache(tmp_path):
    return tmp_path / "onnx-cache"


@pytest.mark.parametrize("design", ["merged", "shared"])
def test_fp32_answers_like_torch_with_its_provenance(make_client, onnx_cache, design):
    torch_client, _ = make_client()
    onnx_client, engine = make_client(
        backend="onnx", onnx_variant="fp32", onnx_design=design, onnx_cache=str(onnx_cache)
    )
    answers = _answers(onnx_client)
    _assert_same(answers, _answers(torch_client), tol=1e-3)
    label = f"onnx:{design}:fp32:CPUExecutionProvider"
    assert {a["adapter"]["backend"] for a in answers.values()} == {label}
    status = onnx_client.get("/status").json()
    assert status["backend"] == "onnx" and status["runtime"]["provider"] == "CPUExecutionProvider"
    assert status["runtime"]["design"] == design and status["runtime"]["variant"] == "fp32"
    extract = onnx_client.post("/extract", json={"text": "Chest pain treated with IV lasix and aspirin ."})
    assert extract.status_code == 200 and extract.json()["adapters"][0]["backend"] == label


def test_auto_variant_on_cpu_is_int8(make_client, onnx_cache):
    client, engine = make_client(backend="onnx", onnx_cache=str(onnx_cache))
    answers = _answers(client)
    assert {a["adapter"]["backend"] for a in answers.values()} == {"onnx:merged:int8:CPUExecutionProvider"}
    for task, data in answers.items():
        for result in data["results"]:
            if task != "ner":
                assert abs(sum(result["probabilities"].values()) - 1) < 1e-4


def test_exports_are_cached_by_artifact(make_client, onnx_cache):
    make_client(backend="onnx", onnx_variant="fp32", onnx_cache=str(onnx_cache))
    folders = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in onnx_cache.iterdir() if p.is_dir()}
    assert len(folders) == 4  # one graph per task's active version
    make_client(backend="onnx", onnx_variant="fp32", onnx_cache=str(onnx_cache))  # a restart
    again = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in onnx_cache.iterdir() if p.is_dir()}
    assert again == folders  # reused, not rebuilt


def test_missing_export_is_rebuilt(make_client, onnx_cache):
    make_client(backend="onnx", onnx_variant="fp32", onnx_cache=str(onnx_cache))
    victim = next(p for p in onnx_cache.iterdir() if p.is_dir())
    (victim / "model.onnx").unlink()
    client, _ = make_client(backend="onnx", onnx_variant="fp32", onnx_cache=str(onnx_cache))
    assert (victim / "model.onnx").is_file()
    _answers(client)


def test_swap_re_exports_without_failed_requests(make_client, onnx_cache, artifacts, store):
    from bedside.adapters.registry import Registry

    torch_client, torch_engine = make_client()
    client, engine = make_client(backend="onnx", onnx_variant="fp32", onnx_cache=str(onnx_cache))
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            r = client.post("/predict", json={"task": "mortality", "texts": ["septic shock , intubated"]})
            statuses.append((r.status_code, r.json()["adapter"]["version"] if r.status_code == 200 else None))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        Registry(store).push(artifacts[1]["mortality"], task="mortality", activate=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and engine.runtime.states["mortality"].resident.info.version != "v2":
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert engine.runtime.states["mortality"].resident.info.version == "v2"
    assert statuses and all(code == 200 for code, _ in statuses)
    assert [v for _, v in statuses][-1] == "v2" and [v for _, v in statuses][0] == "v1"
    torch_engine.runtime.refresh()
    _assert_same(_answers(client), _answers(torch_client), tol=1e-3)


def test_shared_int8_serves_every_task_and_swaps_without_re_export(make_client, onnx_cache, artifacts, store):
    from bedside.adapters.registry import Registry

    client, engine = make_client(backend="onnx", onnx_design="shared", onnx_cache=str(onnx_cache))  # auto: int8
    answers = _answers(client)
    assert {a["adapter"]["backend"] for a in answers.values()} == {"onnx:shared:int8:CPUExecutionProvider"}
    graphs = {p: p.stat().st_mtime_ns for p in onnx_cache.rglob("shared.onnx")}
    assert len(graphs) == 2  # the fp32 export and the int8 graph derived from it
    session = engine.runtime.backend.shared.session
    Registry(store).push(artifacts[1]["mortality"], task="mortality", activate=True)
    engine.runtime.refresh()
    r = client.post("/predict", json={"task": "mortality", "texts": ["septic shock , intubated"]})
    assert r.status_code == 200 and r.json()["adapter"]["version"] == "v2"
    assert engine.runtime.backend.shared.session is session  # LoRA weights are data, not graph
    assert {p: p.stat().st_mtime_ns for p in onnx_cache.rglob("shared.onnx")} == graphs


def test_shared_design_refuses_fp16(make_client, onnx_cache):
    with pytest.raises(ValueError, match="fp32 or int8"):
        make_client(backend="onnx", onnx_variant="fp16", onnx_design="shared", onnx_cache=str(onnx_cache))


def test_unknown_variant_is_a_settings_error():
    from pydantic import ValidationError

    from bedside.service.settings import ServiceSettings

    with pytest.raises(ValidationError, match="onnx_variant"):
        ServiceSettings(backend="onnx", onnx_variant="int4")

"""Activation checks run on the served model and leave the version staged, so the swap
that follows only flips the pointer; a failed check leaves nothing attached."""

from __future__ import annotations

import json
import shutil

import pytest

ADMIN = {"Authorization": "Bearer admin-secret"}
TEXTS = ["septic shock , intubated in the icu", "routine follow up , stable"]


def count_attaches(engine) -> list:
    calls = []
    backend = engine.runtime.backend
    original = backend.attach

    def spy(prepared, slot):
        calls.append(slot)
        return original(prepared, slot)

    backend.attach = spy
    return calls


def fresh_answers(artifact_dir, served_folder, texts):
    from bedside.adapters.artifact import build_model, load_artifact
    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.predict import Predictor

    model = build_model(load_artifact(artifact_dir), load_backbone(str(served_folder)), name="fresh")
    return Predictor(model, "fresh").predict(texts)


def test_activation_attaches_once_and_answers_like_a_fresh_model(make_client, store, artifacts, served_folder):
    from bedside.adapters.registry import Registry

    Registry(store).push(artifacts[1]["mortality"], task="mortality")  # v2
    client, engine = make_client(resident_cap=0)
    attaches = count_attaches(engine)
    r = client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert len(attaches) == 1  # the check's attach is the one that serves: no second load at the swap
    assert not engine.runtime.swaps.staged
    data = client.post("/predict", json={"task": "mortality", "texts": TEXTS}).json()
    assert data["adapter"]["version"] == "v2"
    for got, want in zip(data["results"], fresh_answers(artifacts[1]["mortality"], served_folder, TEXTS)):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-4)


def test_a_resident_version_is_swapped_back_in_and_its_check_dropped(make_client, store, artifacts):
    from bedside.adapters.registry import Registry

    Registry(store).push(artifacts[1]["mortality"], task="mortality")  # v2
    client, engine = make_client(resident_cap=4)  # v1 stays loaded after the first swap
    v1_slot = engine.runtime.states["mortality"].resident.slot
    assert client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN).status_code == 200
    slots = set(engine.runtime.model.slots)
    assert client.post("/admin/adapters/mortality/v1/activate", headers=ADMIN).status_code == 200
    assert engine.runtime.states["mortality"].resident.slot == v1_slot
    assert set(engine.runtime.model.slots) == slots and not engine.runtime.swaps.staged
    assert client.post("/predict", json={"task": "mortality", "texts": TEXTS}).json()["adapter"]["version"] == "v1"


def test_a_failed_check_refuses_activation_and_leaves_nothing_attached(make_client, store, artifacts, tmp_path):
    from bedside.adapters.registry import Registry

    bad = tmp_path / "bad"
    shutil.copytree(artifacts[1]["mortality"], bad)
    examples = json.loads((bad / "examples.json").read_text())
    labels = json.loads((bad / "manifest.json").read_text())["task"]["labels"]
    for example in examples:  # every example now expects the label the adapter does not give
        given = example["expected"]["label"]
        example["expected"]["label"] = next(label for label in labels if label != given)
    (bad / "examples.json").write_text(json.dumps(examples))
    Registry(store).push(bad, task="mortality")  # v2: well-formed, wrong about itself
    client, engine = make_client(resident_cap=0)
    slots_before = set(engine.runtime.model.slots)
    r = client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN)
    assert r.status_code == 422 and "smoke" in r.text, r.text
    assert set(engine.runtime.model.slots) == slots_before and not engine.runtime.swaps.staged
    assert client.post("/predict", json={"task": "mortality", "texts": TEXTS}).json()["adapter"]["version"] == "v1"


def upload(client, folder):
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir())]
    return client.post("/admin/adapters/mortality", files=files, headers=ADMIN)


def test_an_upload_is_checked_and_staged_so_its_activation_only_flips(make_client, artifacts):
    client, engine = make_client(resident_cap=0)
    r = upload(client, artifacts[1]["mortality"])
    assert r.status_code == 200, r.text
    assert r.json()["check"] == {"ok": True} and r.json()["version"]["version"] == "v2"
    assert len(engine.runtime.swaps.staged) == 1
    attaches = count_attaches(engine)
    assert client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN).status_code == 200
    assert attaches == [] and not engine.runtime.swaps.staged  # no load, no second check at activation
    assert client.post("/predict", json={"task": "mortality", "texts": TEXTS}).json()["adapter"]["version"] == "v2"


def test_an_upload_that_fails_its_check_is_refused_stores_nothing_and_keeps_notes_out(make_client, artifacts, tmp_path):
    canary = "CANARY-NOTE-7731"
    folder = tmp_path / "wrong"
    shutil.copytree(artifacts[1]["mortality"], folder)
    examples = [{"input": f"{canary} septic shock", "expected": {"label": label}} for label in ("survived", "died")]
    (folder / "examples.json").write_text(json.dumps(examples))  # one of the two must be wrong
    client, engine = make_client(resident_cap=0)
    r = upload(client, folder)
    assert r.status_code == 422 and r.json()["error"] == "smoke_failed", r.text
    assert "expected" in r.json()["message"] and canary.lower() not in r.text.lower()
    assert not engine.runtime.swaps.staged
    assert [v.version for v in engine.runtime.registry.list("mortality")] == ["v1"]  # nothing stored
    r = client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN)
    assert r.status_code == 404 and canary.lower() not in r.text.lower()


def _shared_int8(make_client, tmp_path):
    return make_client(resident_cap=0, backend="onnx", onnx_design="shared", onnx_cache=str(tmp_path / "onnx"))


def test_shared_int8_stages_uploads_on_the_served_graph(make_client, artifacts, tmp_path):
    client, engine = _shared_int8(make_client, tmp_path)
    assert engine.runtime.backend.label == "onnx:shared:int8:CPUExecutionProvider"
    r = upload(client, artifacts[1]["mortality"])
    assert r.status_code == 200 and r.json()["check"] == {"ok": True}, r.text
    attaches = count_attaches(engine)
    assert client.post("/admin/adapters/mortality/v2/activate", headers=ADMIN).status_code == 200
    assert attaches == [] and not engine.runtime.swaps.staged  # the activation only flipped
    assert client.post("/predict", json={"task": "mortality", "texts": TEXTS}).json()["adapter"]["version"] == "v2"


def test_a_flip_on_the_quantised_graph_is_settled_by_the_fp32_reference(make_client, artifacts, tmp_path, monkeypatch):
    from bedside.adapters.registry.smoke import AnswerMismatch
    from bedside.service import metrics, swaps

    client, engine = _shared_int8(make_client, tmp_path)

    def flipped(*args, **kwargs):  # what an example near the decision boundary does under int8
        raise AnswerMismatch("example 0: expected 'died', the adapter predicted 'survived'")

    monkeypatch.setattr(swaps, "check_predictions", flipped)
    before = metrics.QUANTISED_CHECK_FLIPS._value.get()
    r = upload(client, artifacts[1]["mortality"])
    assert r.status_code == 200 and r.json()["check"] == {"ok": True}, r.text  # the fp32 check passed
    assert metrics.QUANTISED_CHECK_FLIPS._value.get() == before + 1
    assert len(engine.runtime.swaps.staged) == 1


def test_a_version_wrong_on_both_models_is_refused_and_detached(make_client, artifacts, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(artifacts[1]["mortality"], bad)
    examples = json.loads((bad / "examples.json").read_text())
    labels = json.loads((bad / "manifest.json").read_text())["task"]["labels"]
    for example in examples:
        example["expected"]["label"] = next(label for label in labels if label != example["expected"]["label"])
    (bad / "examples.json").write_text(json.dumps(examples))
    client, engine = _shared_int8(make_client, tmp_path)
    slots_before = set(engine.runtime.model.slots)
    r = upload(client, bad)
    assert r.status_code == 422 and r.json()["error"] == "smoke_failed", r.text
    assert set(engine.runtime.model.slots) == slots_before and not engine.runtime.swaps.staged


def test_a_malformed_answer_on_the_quantised_graph_is_refused_whatever_fp32_says(
    make_client, artifacts, tmp_path, monkeypatch
):
    from bedside.service import swaps

    client, engine = _shared_int8(make_client, tmp_path)

    def not_finite(*args, **kwargs):
        raise ValueError("the prediction is not a finite distribution over the task's labels")

    monkeypatch.setattr(swaps, "check_predictions", not_finite)
    slots_before = set(engine.runtime.model.slots)
    r = upload(client, artifacts[1]["mortality"])
    assert r.status_code == 422 and r.json()["error"] == "smoke_failed", r.text
    assert set(engine.runtime.model.slots) == slots_before and not engine.runtime.swaps.staged

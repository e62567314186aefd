import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from bedside.adapters.artifact import (
    HEAD_WEIGHTS,
    MANIFEST,
    PEFT_WEIGHTS,
    ArtifactError,
    BaseRef,
    HeadRef,
    Manifest,
    Method,
    attach,
    load_artifact,
    save_from_model,
)
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.predict import Predictor
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import tiny_backbone
from tests.helpers import four_task_model

INPUTS = {
    "mortality": ["septic shock , intubated", "routine follow up , stable"],
    "length_of_stay": ["admitted for surgery and rehab placement"],
    "ner": ["chest pain treated with iv lasix"],
    "relations": [
        {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}}
    ],
}


def manifest_for(model, task_name):
    task = PRESETS[task_name]
    b = model.backbone
    return Manifest(
        name=f"{task_name}-test",
        task=task,
        base=BaseRef(name=b.name, fingerprint=b.fingerprint, hidden_size=b.hidden_size),
        method=Method.lora,
        head=HeadRef(kind=task.kind, num_labels=task.num_labels),
        max_length=64,
        metrics={"auroc": 0.5},
    )


@pytest.fixture()
def saved(tmp_path):
    model = four_task_model(tiny_backbone(seed=0))
    paths = {}
    for name in PRESETS:
        paths[name] = save_from_model(tmp_path / name, model, name, manifest_for(model, name))
    return model, paths


def test_save_load_gives_identical_predictions(saved):
    model, paths = saved
    fresh = MultiAdapterModel(tiny_backbone(seed=0))
    for name, path in paths.items():
        attach(fresh, load_artifact(path), name)
    fresh.eval()
    for name, items in INPUTS.items():
        assert Predictor(fresh, name).predict(items) == Predictor(model, name).predict(items)
    assert (paths["ner"] / "README.md").read_text().startswith("# ner-test")


def test_other_base_fingerprint_is_refused(saved):
    _, paths = saved
    other = MultiAdapterModel(tiny_backbone(seed=1))
    with pytest.raises(ArtifactError, match="different base model"):
        attach(other, load_artifact(paths["mortality"]))


def test_manifest_label_count_must_match_head(saved):
    _, paths = saved
    path = paths["mortality"]
    data = json.loads((path / MANIFEST).read_text())
    data["task"]["labels"] = ["a", "b", "c"]
    data["head"]["num_labels"] = 3
    (path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="label count mismatch"):
        load_artifact(path)
    data["head"]["num_labels"] = 2  # manifest disagrees with itself
    (path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="lists 3 labels"):
        load_artifact(path)


def test_non_finite_and_corrupt_weights_are_refused(saved):
    _, paths = saved
    path = paths["ner"]
    state = load_file(path / PEFT_WEIGHTS)
    key = next(iter(state))
    state[key][0, 0] = float("nan")
    save_file(state, path / PEFT_WEIGHTS)
    with pytest.raises(ArtifactError, match="NaN or Inf"):
        load_artifact(path)
    (path / HEAD_WEIGHTS).write_bytes((path / HEAD_WEIGHTS).read_bytes()[:40])
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        load_artifact(path)


def test_weights_for_another_shape_are_refused(saved, tmp_path):
    _, paths = saved
    bigger = MultiAdapterModel(tiny_backbone(seed=0, hidden_size=48))
    art = load_artifact(paths["mortality"])
    art.manifest.base.fingerprint = bigger.backbone.fingerprint  # pretend the fingerprint matched
    with pytest.raises(ArtifactError):
        attach(bigger, art)


def test_head_shape_must_match_kind(saved):
    _, paths = saved
    path = paths["relations"]  # pair head: 2*hidden inputs
    head = load_file(path / HEAD_WEIGHTS)
    head["classifier.weight"] = torch.zeros(9, 7)
    save_file(head, path / HEAD_WEIGHTS)
    with pytest.raises(ArtifactError, match="do not fit"):
        attach(MultiAdapterModel(tiny_backbone(seed=0)), load_artifact(path))

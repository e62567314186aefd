"""Training on the tiny encoder with synthetic data: every method, seeds, artifacts."""

import json

import pytest

from bedside.adapters.artifact import Method, attach, build_model, load_artifact
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.predict import Predictor
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import tiny_backbone
from bedside.training.loaders import load_dataset
from bedside.training.settings import TrainSettings
from bedside.training.synth import write_synthetic
from bedside.training.trainer import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=3, size=120)


def small(splits, n=24):
    return {k: v[:n] for k, v in splits.items()}


def fast(**kw):
    return TrainSettings(**{"epochs": 1, "batch_size": 8, "max_length": 48, **kw})


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("task_name,folder", [("mortality", "mortality"), ("ner", "ner"), ("relations", "relations")])
def test_each_method_trains_and_saves(method, task_name, folder, synth, tmp_path):
    task = PRESETS[task_name]
    splits = small(load_dataset(synth[folder], task))
    result = train(task, splits, fast(method=method), tmp_path / "a", backbone=tiny_backbone(), progress=False)
    art = load_artifact(result.artifact)
    assert art.manifest.method is method and art.manifest.trainable_params == result.cost["trainable_params"]
    assert art.manifest.servable is (method is Method.lora)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["cost"]["train_seconds"] > 0
    assert (tmp_path / "a" / "log.csv").read_text().startswith("epoch,train_loss")
    # Every method is evaluable standalone on a fresh copy of its base.
    model = build_model(art, tiny_backbone(), name="x")
    assert len(Predictor(model, "x").predict([e["input"] for e in art.examples])) == len(art.examples)


def test_lora_artifact_serves_on_shared_base_with_same_answers(synth, tmp_path):
    task = PRESETS["mortality"]
    result = train(
        task,
        small(load_dataset(synth["mortality"], task)),
        fast(),
        tmp_path / "m",
        backbone=tiny_backbone(),
        progress=False,
    )
    art = load_artifact(result.artifact)
    shared = MultiAdapterModel(tiny_backbone())
    attach(shared, art, "mortality")
    shared.eval()
    for example in art.examples:
        assert Predictor(shared, "mortality").predict([example["input"]])[0]["label"] == example["expected"]["label"]


def test_same_seed_same_metrics(synth, tmp_path):
    task = PRESETS["ner"]
    splits = small(load_dataset(synth["ner"], task), 32)
    runs = [
        train(task, splits, fast(seed=7, epochs=2), tmp_path / str(i), backbone=tiny_backbone(), progress=False).metrics
        for i in range(2)
    ]
    assert runs[0] == runs[1]


def test_few_shot_and_time_budget(synth, tmp_path):
    task = PRESETS["mortality"]
    splits = load_dataset(synth["mortality"], task)
    result = train(
        task,
        splits,
        fast(few_shot=4, time_budget=1e-6, epochs=3),
        tmp_path / "f",
        backbone=tiny_backbone(),
        progress=False,
    )
    assert result.cost["train_examples"] == 8  # 4 per class, 2 classes
    assert result.cost["stopped_by_time_budget"] and result.cost["epochs_run"] == 1


def test_empty_split_and_cpu_precision_are_refused(synth, tmp_path):
    task = PRESETS["mortality"]
    splits = small(load_dataset(synth["mortality"], task))
    with pytest.raises(ValueError, match="'val' split is empty"):
        train(task, {**splits, "val": []}, fast(), tmp_path / "e", backbone=tiny_backbone(), progress=False)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train(
            task, splits, fast(precision="bf16", device="cpu"), tmp_path / "p", backbone=tiny_backbone(), progress=False
        )


@pytest.mark.parametrize("strategy", ["truncate", "head_tail", "chunks"])
def test_every_long_input_strategy_trains_and_serves_the_same_way(strategy, synth, tmp_path):
    task = PRESETS["mortality"]
    splits = small(load_dataset(synth["mortality"], task), 12)
    settings = fast(max_length=16, long_input=strategy, chunk_pool="max")  # the synthetic notes are longer
    result = train(task, splits, settings, tmp_path / "a", backbone=tiny_backbone(), progress=False)
    art = load_artifact(result.artifact)
    assert art.manifest.long_input.strategy == strategy and art.manifest.long_input.pool == "max"
    model = build_model(art, tiny_backbone(), name="x")
    (answer,) = Predictor(model, "x").predict([splits["test"][0].text])
    assert answer["strategy"] == {"chunks": "chunks:max"}.get(strategy, strategy)
    assert answer["windows"] == (1 if strategy != "chunks" else answer["windows"]) and answer["windows"] >= 1
    if strategy == "chunks":
        assert answer["windows"] > 1


def test_training_batches_are_grouped_by_length_unless_asked_not_to(synth, tmp_path, monkeypatch):
    task = PRESETS["ner"]  # sentences of 12 to 55 tokens
    splits = {**small(load_dataset(synth["ner"], task), n=8), "train": load_dataset(synth["ner"], task)["train"][:64]}
    padding = {}
    for grouped in (True, False):
        seen = []
        loss = MultiAdapterModel.loss

        def recording(self, rows, *args, seen=seen, loss=loss):
            if self.training:
                seen.append([len(r) for r in rows])
            return loss(self, rows, *args)

        monkeypatch.setattr(MultiAdapterModel, "loss", recording)
        settings = fast(group_by_length=grouped, max_length=128, bootstrap=0)
        train(task, splits, settings, tmp_path / str(grouped), backbone=tiny_backbone(), progress=False)
        assert sum(map(len, seen)) == 64  # every training example once
        padding[grouped] = sum(len(b) * max(b) - sum(b) for b in seen)
    assert padding[True] < padding[False] / 2

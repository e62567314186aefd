"""Builders shared by tests: random LoRA adapters for every preset task."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig

from bedside.adapters.heads import build_head
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tasks import PRESETS


def random_lora(rank: int = 4, targets=("query", "key", "value")) -> LoraConfig:
    # init_lora_weights=False: non-zero B, so every adapter changes the output.
    return LoraConfig(r=rank, lora_alpha=8, lora_dropout=0.0, target_modules=list(targets), init_lora_weights=False)


def four_task_model(backbone, seed: int = 0) -> MultiAdapterModel:
    model = MultiAdapterModel(backbone)
    torch.manual_seed(seed)
    for task in PRESETS.values():
        model.add_adapter(task.name, task, build_head(task.kind, backbone.hidden_size, task.num_labels), random_lora())
    return model.eval()


# -- adapter artifacts for registry tests -------------------------------------------------
SMOKE_INPUTS = {
    "mortality": ["septic shock , intubated", "routine follow up , stable"],
    "length_of_stay": ["admitted for surgery and rehab placement"],
    "ner": ["chest pain treated with iv lasix"],
    "relations": [
        {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}}
    ],
}


def task_manifest(model, task_name: str, **overrides):
    """A valid manifest for one preset task of ``model`` (fields overridable)."""
    from bedside.adapters.artifact import BaseRef, HeadRef, Manifest, Method

    task = PRESETS[task_name]
    b = model.backbone
    fields = dict(
        name=f"{task_name}-test",
        task=task,
        base=BaseRef(name=b.name, fingerprint=b.fingerprint, hidden_size=b.hidden_size),
        method=Method.lora,
        head=HeadRef(kind=task.kind, num_labels=task.num_labels),
        max_length=64,
        metrics={"auroc": 0.5} if task.kind.value == "sequence" else {"entity_f1": 0.25},
    )
    fields.update(overrides)
    return Manifest(**fields)


def smoke_examples(model, task_name: str) -> list[dict]:
    """``examples.json`` items whose expected answers are what ``model`` predicts now."""
    from bedside.adapters.decoding import expectation
    from bedside.adapters.predict import Predictor

    items = SMOKE_INPUTS[task_name]
    return [
        {"input": item, "expected": expectation(pred)}
        for item, pred in zip(items, Predictor(model, task_name).predict(items))
    ]


def save_task_artifacts(out_dir, backbone=None, seed: int = 0, tasks=None) -> dict:
    """Save real LoRA artifacts (with smoke examples) for preset tasks; return task -> folder."""
    from pathlib import Path

    from bedside.adapters.artifact import save_from_model
    from bedside.adapters.tiny import tiny_backbone

    model = four_task_model(backbone or tiny_backbone(seed=0), seed=seed)
    out = Path(out_dir)
    return {
        name: save_from_model(out / name, model, name, task_manifest(model, name), smoke_examples(model, name))
        for name in (tasks or PRESETS)
    }


def write_safetensors(path, header: dict, data: bytes = b"", header_length: int | None = None) -> None:
    """A hand-made (possibly hostile) safetensors file."""
    import json
    import struct
    from pathlib import Path

    raw = json.dumps(header).encode()
    n = len(raw) if header_length is None else header_length
    Path(path).write_bytes(struct.pack("<Q", n) + raw + data)


def edit_json(path, **changes) -> None:
    """Change top-level keys of a JSON file in place."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    data.update(changes)
    Path(path).write_text(json.dumps(data))


def active_store(root, artifacts: dict) -> Path:
    """A registry store at ``root`` with each task's artifact pushed and active (v1)."""
    from pathlib import Path

    from bedside.adapters.registry import Registry

    registry = Registry(root)
    for task, path in artifacts.items():
        registry.push(path, task=task, activate=True)
    return Path(root)

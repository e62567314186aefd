"""What a hospital would run without bedside: one transformers ``pipeline`` per task, each with
its own full model (the same base architecture and weights), called one request at a time."""
from __future__ import annotations

import time

import torch

from adapters.backbones import Backbone, transformers_model
from adapters.encoding import mark_entities
from adapters.examples import Span
from adapters.tasks import PRESETS, TaskKind

from .soak import _pct


def _model(backbone: Backbone, kind: TaskKind, num_labels: int):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if kind is TaskKind.token else AutoModelForSequenceClassification
    return transformers_model(backbone, auto, num_labels=num_labels).eval()  # heads stay random: speed only


def build_pipelines(backbone: Backbone, tasks=tuple(PRESETS)) -> dict:
    from transformers import pipeline

    pipes = {}
    for name in tasks:
        task = PRESETS[name]
        model = _model(backbone, task.kind, task.num_labels)
        if task.kind is TaskKind.token:
            pipes[name] = pipeline("token-classification", model=model, tokenizer=backbone.tokenizer, device=-1,
                                   aggregation_strategy="simple")
        else:
            pipes[name] = pipeline("text-classification", model=model, tokenizer=backbone.tokenizer, device=-1)
    return pipes


def call(pipes: dict, task: str, item):
    if PRESETS[task].kind is TaskKind.pair:  # the same entity markers bedside inserts
        text, _, _ = mark_entities(item["text"], Span(**item["head"]), Span(**item["tail"]))
        return pipes[task](text, truncation=True, max_length=128)
    if PRESETS[task].kind is TaskKind.token:
        return pipes[task](item)
    return pipes[task](item, truncation=True, max_length=128)


def sequential(pipes: dict, items, seconds: float, warmup: int = 8) -> dict:
    """Requests/s calling the pipelines one request at a time (tasks in turn)."""
    with torch.inference_mode():
        for task, item in items[:warmup]:
            call(pipes, task, item)
        latencies, i = [], 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            task, item = items[i % len(items)]
            t0 = time.perf_counter()
            call(pipes, task, item)
            latencies.append(time.perf_counter() - t0)
            i += 1
        elapsed = time.perf_counter() - start
    return {"rps": len(latencies) / elapsed, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99),
            "answered": len(latencies), "seconds": elapsed}

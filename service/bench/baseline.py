"""What a hospital would run without bedside: one transformers ``pipeline`` per task, each with
its own full model (the same base architecture and weights), called one request at a time."""

from __future__ import annotations

import time

import torch

from bedside.adapters.backbones import Backbone, transformers_model
from bedside.adapters.kinds import KindStrategy, strategy
from bedside.adapters.tasks import PRESETS

from .soak import _pct


def _model(backbone: Backbone, kind: KindStrategy, num_labels: int):
    import transformers

    auto = getattr(transformers, kind.auto_model)
    return transformers_model(backbone, auto, num_labels=num_labels).eval()  # heads stay random: speed only


def build_pipelines(backbone: Backbone, tasks=tuple(PRESETS), device: int | str = -1) -> dict:
    """``device``: -1 for the CPU, else the GPU the pipelines run on (``"cuda"``, 0, ...)."""
    from transformers import pipeline

    pipes = {}
    for name in tasks:
        task = PRESETS[name]
        kind = strategy(task.kind)
        options = {"aggregation_strategy": "simple"} if kind.pipeline_task == "token-classification" else {}
        pipes[name] = pipeline(
            kind.pipeline_task,
            model=_model(backbone, kind, task.num_labels),
            tokenizer=backbone.tokenizer,
            device=device,
            **options,
        )
    return pipes


def call(pipes: dict, task: str, item):
    text, options = strategy(PRESETS[task].kind).pipeline_input(item)
    return pipes[task](text, **options)


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
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "answered": len(latencies),
        "seconds": elapsed,
    }

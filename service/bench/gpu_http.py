"""The GPU suite's HTTP part: a real ``bentoml serve`` of bedside on the GPU, four random adapters
of the real shape active, closed-loop aiohttp clients at 1 to 256, against what a hospital would
write: a transformers ``pipeline`` per task on the same GPU, one request at a time.

The base is saved as a model folder (random weights of the shape, the tiny tokenizer) and the
adapters pushed into a fresh store, so the server loads them as it loads trained ones: the
fingerprint check, the registry and the batcher are the served path. Both sides run the same
requests (short notes, tasks in turn) in float32 (the service's precision on every device).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bedside.adapters.artifact import save_from_model
from bedside.adapters.backbones import load_backbone
from bedside.adapters.registry import Registry
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import shaped_backbone

from .baseline import build_pipelines, sequential
from .model import TARGETS, bench_manifest, build_models
from .service import closed_loop
from .workload import requests

RANK = 16  # the demo adapters' rank, on every Linear
WORDS = 64  # words per note: about 100 tokens, one window


def random_store(root: Path, shape: str, max_length: int = 128) -> tuple[Path, Path]:
    """(a backbone folder of random weights of ``shape``, a store with a random rank-16 LoRA
    adapter on every Linear active for each preset task, trained-on that folder's weights)."""
    folder, store = root / "backbone", root / "store"
    made = shaped_backbone(shape)
    made.encoder.save_pretrained(folder)
    made.tokenizer.save_pretrained(folder)
    backbone = load_backbone(str(folder))  # named and fingerprinted as the server will load it
    peft_model, _ = build_models(backbone, TARGETS["all-linear"], rank=RANK)
    registry = Registry(store)
    for name in PRESETS:
        manifest = bench_manifest(backbone, name, max_length)
        registry.push(save_from_model(root / "artifacts" / name, peft_model, name, manifest), task=name, activate=True)
    return folder, store


def measure_http(
    shape: str, device: str, levels: list[int], seconds: float, warmup: float, deadline: float, work: Path, log
) -> list[dict]:
    """One row per client count: answered requests/s and latency of the served path, and the
    per-request pipeline's requests/s on the same requests and device (measured before and after
    the server's load, averaged)."""
    import gc

    import torch

    from ..server import served

    folder, store = random_store(work, shape)
    items = requests(256, words=WORDS)
    plain = load_backbone(str(folder), device)
    pipes = build_pipelines(plain, device=device if device != "cpu" else -1)
    pipeline_seconds = max(seconds, 1.0)
    before = sequential(pipes, items, pipeline_seconds)
    results: list[dict] = []
    with served(work / "server.log", timeout=300, store=store, backbone=folder, device=device) as (url, _):
        for clients in levels:
            if time.monotonic() > deadline:
                log(f"time budget spent: HTTP part skipped from {clients} clients on")
                break
            row = asyncio.run(closed_loop(url, items, clients, seconds, warmup))
            results.append(row)
            log({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    after = sequential(pipes, items, pipeline_seconds)
    baseline = (before["rps"] + after["rps"]) / 2
    for row in results:
        row.update(shape=shape, pipeline_rps=baseline, service_over_pipeline=row["rps"] / baseline)
    del pipes, plain
    gc.collect()
    if device != "cpu":
        torch.cuda.empty_cache()
    return results

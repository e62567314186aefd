"""``bedside bench step``: where a training step's time and memory go.

Each variant runs in a process of its own (peak RSS is per process): the same shuffled batches
of the same data, ``--steps`` optimiser steps, then the step time, the peak and final RSS and
the activation memory the autograd tape holds for the longest batch. Variants name what they
change from the default recipe: ``peft`` (PEFT's own LoRA forward, not fused), ``dropout``
(LoRA dropout 0.1 and the base's attention dropout, as the paper recipe), ``heap`` (glibc's
default allocator thresholds), ``mmapN`` (the fixed mmap threshold at N MB instead of 1),
``thp`` (glibc asks for transparent huge pages: fewer, larger page faults), ``full`` (full
fine-tuning); ``+`` combines them.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .settings import TrainSettings

# glibc reads its tunables at start only: a variant's process gets them in its environment.
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def measure(task_name: str, data: str, variant: str, steps: int, batch_size: int, backbone: str) -> dict:
    """One variant, in this process."""
    import torch

    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.tasks import resolve_task

    from .fused_lora import fused_lora
    from .loaders import load_dataset
    from .memory import THRESHOLD, steady_heap
    from .trainer import SLOT, build, optimizer_for

    parts = set(filter(None, variant.split("+")))
    megabytes = [float(p[len("mmap") :]) for p in parts if p.startswith("mmap")]
    threshold = None if "heap" in parts else int(megabytes[0] * 2**20) if megabytes else THRESHOLD
    if threshold is not None:
        steady_heap(threshold)
    update: dict = {"batch_size": batch_size}
    if "dropout" in parts:
        update.update(dropout=0.1, attention_dropout=None)
    if "full" in parts:
        update["method"] = "full"
    settings = TrainSettings(**update)
    task = resolve_task(task_name)
    model = build(load_backbone(backbone), task, settings)
    slot = model.slots[SLOT]
    examples = load_dataset(data, task)["train"][: steps * batch_size]
    items = [slot.kind.encode_example(slot.encoder, e) for e in examples]
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [[items[j] for j in order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
    optimizer = optimizer_for(model, settings)
    model.train()
    fused = contextlib.nullcontext(0) if "peft" in parts else fused_lora(model)
    with fused as n_fused:
        longest = max(batches, key=lambda b: max(len(r) for it in b for r in it.rows))
        saved: dict[int, int] = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        rows = [r for it in longest for r in it.rows]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.loss(rows, SLOT, list(range(len(rows))), settings.chunk_pool)
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        activations = sum(v for k, v in saved.items() if k not in weights)
        del loss
        start = time.perf_counter()
        for batch in batches:
            rows = [r for it in batch for r in it.rows]
            groups = [g for g, it in enumerate(batch) for _ in it.rows]
            loss = model.loss(rows, SLOT, groups, settings.chunk_pool)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - start
    return {
        "variant": variant or "default",
        "steps": len(batches),
        "seconds_per_step": seconds / len(batches),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_rss_mb": _rss_mb(),
        "saved_activations_mb_longest_batch": activations / 2**20,
        "fused_lora_layers": n_fused,
        "mmap_threshold_mb": None if threshold is None else threshold / 2**20,  # None: glibc's own
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def run_variants(task: str, data: str, variants: list[str], steps: int, batch_size: int, backbone: str) -> list[dict]:
    """Each variant in a fresh interpreter, one after another."""
    results = []
    for variant in variants:
        args = [task, data, variant, str(steps), str(batch_size), backbone]
        code = "import json, sys; from bedside.training.step_profile import measure; "
        code += "print('RESULT ' + json.dumps(measure(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), "
        code += "int(sys.argv[5]), sys.argv[6])))"
        env = {**os.environ, **(THP_ENV if "thp" in variant.split("+") else {})}
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, env=env)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"variant {variant!r} failed: {done.stderr[-2000:]}")
        results.append(json.loads(line[len("RESULT ") :]))
    base = results[0]["seconds_per_step"]
    for r in results:
        r["time_vs_first"] = r["seconds_per_step"] / base
    return results


def write(results: list[dict], folder: Path, meta: dict) -> Path:
    from bedside.adapters import reporting

    columns = [
        "variant",
        "steps",
        "seconds_per_step",
        "time_vs_first",
        "peak_rss_mb",
        "final_rss_mb",
        "saved_activations_mb_longest_batch",
        "fused_lora_layers",
        "trainable_params",
        "mmap_threshold_mb",
    ]
    return reporting.write(
        folder,
        "step",
        results,
        columns,
        meta,
        plots=[
            lambda d: reporting.bar_plot(
                results,
                "variant",
                {"peak RSS (MB)": "peak_rss_mb", "s per step ×1000": "seconds_per_step"},
                f"a training step: time and memory ({meta['task']}, batch {meta['batch_size']})",
                d / "step.png",
                scale={"seconds_per_step": 1000},
            )
        ],
    )

"""``bedside bench step``: where a training step's time and memory go.

Each variant runs in a process of its own (peak RSS is per process): the same shuffled batches
of the same data, ``--steps`` optimiser steps, then the step time, the peak and final RSS and
the activation memory the autograd tape holds for the longest batch. Variants name what they
change from the default recipe: ``peft`` (PEFT's own LoRA forward, not fused), ``dropout``
(LoRA dropout 0.1 and the base's attention dropout, as the paper recipe), ``heap`` (glibc's
default allocator thresholds), ``mmapN`` (the fixed mmap threshold at N MB instead of 1),
``thp`` (glibc asks for transparent huge pages: fewer, larger page faults), ``torchdropout``
(torch's own dropout masks, not the cheaper ones), ``ungrouped`` (plain shuffled batches, not
grouped by length), ``full`` (full fine-tuning); ``+`` combines them.
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
from typing import Any

from .settings import TrainSettings

# glibc reads its tunables at start only: a variant's process gets them in its environment.
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


CHANGES = ("peft", "dropout", "torchdropout", "ungrouped", "heap", "thp", "full")  # and mmapN


def _parts(variant: str) -> set[str]:
    parts = set(filter(None, variant.split("+")))
    for part in parts:
        if part not in CHANGES and not (part.startswith("mmap") and part[4:].replace(".", "", 1).isdigit()):
            raise ValueError(f"unknown change {part!r} in variant {variant!r}: use {', '.join(CHANGES)} or mmapN")
    return parts


def check_variants(variants: list[str]) -> None:
    """Raise ValueError on a variant naming a change this bench does not know."""
    for variant in variants:
        _parts(variant)


def _heap(parts: set[str]) -> int | None:
    """The process's allocator settings for a variant: its fixed mmap threshold (None: glibc's own)."""
    from .memory import THRESHOLD, steady_heap

    megabytes = [float(p[len("mmap") :]) for p in parts if p.startswith("mmap")]
    threshold = None if "heap" in parts else int(megabytes[0] * 2**20) if megabytes else THRESHOLD
    if threshold is not None:
        steady_heap(threshold)
    return threshold


def _process_wide(parts: set[str]) -> set[str]:
    return {p for p in parts if p in ("heap", "thp") or p.startswith("mmap")}


def _check_one_process(variants: list[str]) -> None:
    wide = [_process_wide(_parts(v)) for v in variants]
    if any(w != wide[0] for w in wide):
        raise ValueError("interleaved variants share one process: heap, mmapN and thp must be the same for all")


def _setup(task_name: str, data: str, parts: set[str], steps: int, batch_size: int, backbone: str):
    """A variant's model, optimiser and settings, and the shuffled batches (the same for every variant)."""
    import torch

    from bedside.adapters.backbones import load_backbone
    from bedside.adapters.tasks import resolve_task

    from .batching import epoch_batches
    from .loaders import load_dataset
    from .trainer import SLOT, build, optimizer_for

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
    lengths = [item.longest for item in items]
    order = epoch_batches(lengths, batch_size, torch.Generator().manual_seed(0), "ungrouped" not in parts)
    batches = [[items[j] for j in b] for b in order]
    model.train()
    return model, optimizer_for(model, settings), settings, batches


@contextlib.contextmanager
def _fused(model, parts: set[str]):
    """The trainer's fused LoRA layers and cheaper dropout masks, unless the variant turns them off;
    yields how many LoRA layers run fused and how many dropouts draw the cheaper masks."""
    from .fast_dropout import fast_dropout
    from .fused_lora import fused_lora

    with contextlib.ExitStack() as stack:
        fused = 0 if "peft" in parts else stack.enter_context(fused_lora(model))
        dropouts = 0 if "torchdropout" in parts else stack.enter_context(fast_dropout(model))
        yield fused, dropouts


def _step(model, optimizer, settings: TrainSettings, batch) -> None:
    from .trainer import batch_loss

    loss = batch_loss(model, batch, settings.chunk_pool)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _described(variant: str, model, counts: tuple[int, int], threshold: int | None) -> dict:
    return {
        "variant": variant or "default",
        "fused_lora_layers": counts[0],
        "fast_dropout_layers": counts[1],
        "mmap_threshold_mb": None if threshold is None else threshold / 2**20,  # None: glibc's own
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def measure(task_name: str, data: str, variant: str, steps: int, batch_size: int, backbone: str) -> dict:
    """One variant, in this process."""
    import torch

    from .trainer import SLOT

    parts = _parts(variant)
    threshold = _heap(parts)
    model, optimizer, settings, batches = _setup(task_name, data, parts, steps, batch_size, backbone)
    with _fused(model, parts) as counts:
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
            _step(model, optimizer, settings, batch)
        seconds = time.perf_counter() - start
    return {
        **_described(variant, model, counts, threshold),
        "steps": len(batches),
        "seconds_per_step": seconds / len(batches),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_rss_mb": _rss_mb(),
        "saved_activations_mb_longest_batch": activations / 2**20,
    }


def interleaved(
    task_name: str, data: str, variants: list[str], steps: int, batch_size: int, backbone: str, resamples: int = 1000
) -> list[dict]:
    """All variants in this process, taking turns step by step over the same batches (the order
    reversed every step), so the machine's drift falls on each alike: per variant its time per
    step and its total time over the first variant's, with a 95 % interval (steps resampled,
    paired). The first step of each is a warm-up, not timed. Process-wide settings (heap,
    mmapN, thp) must be the same for all."""
    import numpy as np

    parts = [_parts(v) for v in variants]
    _check_one_process(variants)
    threshold = _heap(parts[0])
    setups = [_setup(task_name, data, p, steps, batch_size, backbone) for p in parts]
    times = np.zeros((len(variants), len(setups[0][3])))
    with contextlib.ExitStack() as stack:
        fused = [stack.enter_context(_fused(model, p)) for (model, *_), p in zip(setups, parts)]
        for k in range(times.shape[1]):
            for i in range(len(variants)) if k % 2 == 0 else reversed(range(len(variants))):
                model, optimizer, settings, batches = setups[i]
                start = time.perf_counter()
                _step(model, optimizer, settings, batches[k])
                times[i, k] = time.perf_counter() - start
    timed = times[:, 1:] if times.shape[1] > 1 else times
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, timed.shape[1], (resamples, timed.shape[1]))
    results = []
    for i, variant in enumerate(variants):
        ratios = timed[i][drawn].sum(1) / timed[0][drawn].sum(1)
        results.append(
            {
                **_described(variant, setups[i][0], fused[i], threshold),
                "steps": int(timed.shape[1]),
                "seconds_per_step": float(timed[i].mean()),
                "time_vs_first": float(timed[i].sum() / timed[0].sum()),
                "time_vs_first_low": float(np.quantile(ratios, 0.025)),
                "time_vs_first_high": float(np.quantile(ratios, 0.975)),
                "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    return results


def _in_fresh_process(function: str, args: list[Any], thp: bool) -> Any:
    """``function`` of this module run in a new interpreter (its own peak RSS and allocator settings)."""
    code = f"import json, sys; from bedside.training.step_profile import {function} as f; "
    code += "print('RESULT ' + json.dumps(f(*json.loads(sys.argv[1]))))"
    env = {**os.environ, **(THP_ENV if thp else {})}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=False, env=env
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{function} {args[2]!r} failed: {done.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])


def run_variants(
    task: str, data: str, variants: list[str], steps: int, batch_size: int, backbone: str, interleave: bool = False
) -> list[dict]:
    """Each variant in a fresh interpreter, one after another; ``interleave``: all of them in one,
    taking turns step by step (:func:`interleaved`)."""
    if interleave:
        _check_one_process(variants)
        thp = "thp" in _parts(variants[0])
        return _in_fresh_process("interleaved", [task, data, variants, steps, batch_size, backbone], thp)
    results = [
        _in_fresh_process("measure", [task, data, v, steps, batch_size, backbone], "thp" in _parts(v)) for v in variants
    ]
    base = results[0]["seconds_per_step"]
    for r in results:
        r["time_vs_first"] = r["seconds_per_step"] / base
    return results


def write(results: list[dict], folder: Path, meta: dict) -> Path:
    from bedside.adapters import reporting

    paired = "time_vs_first_low" in results[0]  # interleaved: one process, memory is the process's
    memory = (
        ["process_peak_rss_mb"] if paired else ["peak_rss_mb", "final_rss_mb", "saved_activations_mb_longest_batch"]
    )
    ratio = ["time_vs_first", "time_vs_first_low", "time_vs_first_high"] if paired else ["time_vs_first"]
    columns = ["variant", "steps", "seconds_per_step", *ratio, *memory]
    columns += ["fused_lora_layers", "fast_dropout_layers", "trainable_params", "mmap_threshold_mb"]
    bars = {"s per step ×1000": "seconds_per_step"}
    if not paired:
        bars = {"peak RSS (MB)": "peak_rss_mb", **bars}
    how = "variants taking turns in one process" if paired else "one process per variant"
    return reporting.write(
        folder,
        "step",
        results,
        columns,
        {**meta, "interleaved": paired},
        plots=[
            lambda d: reporting.bar_plot(
                results,
                "variant",
                bars,
                f"a training step ({Path(meta['task']).name}, batch {meta['batch_size']}; {how})",
                d / "step.png",
                scale={"seconds_per_step": 1000},
            )
        ],
    )

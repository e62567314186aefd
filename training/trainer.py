"""Fine-tune one adapter the paper's way and write the artifact.

AdamW (weight decay 0.01, none on biases and LayerNorm), gradient norm clipped at 1.0,
linear schedule with 6 % warm-up, evaluation every epoch, the best epoch kept by the task's primary
validation metric, the test split scored once at the end. Every run records
what it cost: parameters, wall time, time to best, peak memory, throughput.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from bedside.adapters.artifact import BaseRef, HeadRef, Manifest, Method, save_from_model
from bedside.adapters.backbones import Backbone, load_backbone, pick_device
from bedside.adapters.examples import Example
from bedside.adapters.heads import build_head
from bedside.adapters.kinds import strategy
from bedside.adapters.kinds.base import EncodedItem
from bedside.adapters.metrics import primary_metric
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tasks import TaskSpec

from .batching import epoch_batches
from .calibration import fit_on_validation, report_on_test
from .evaluation import EvalResult, evaluate, smoke_examples
from .fast_dropout import fast_dropout
from .fused_lora import fused_lora
from .loaders.sampling import few_shot
from .memory import steady_heap
from .methods import peft_config, servable
from .settings import TrainSettings

SLOT = "train"
ARTIFACT_DIR = "artifact"  # inside a run folder, beside metrics.json and log.csv


@dataclass
class TrainResult:
    artifact: Path
    metrics: dict
    cost: dict
    intervals: dict = field(default_factory=dict)  # test metric -> 95 % bootstrap interval


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def data_hash(examples: list[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(repr(sorted(vars(e).items())).encode())
    return "sha256:" + digest.hexdigest()


def data_summary(task: TaskSpec, train_examples: list[Example], splits: dict[str, list[Example]]) -> dict:
    """Split sizes and what each holds (labels, or entities by type), for the manifest and model card."""
    kind = strategy(task.kind)
    parts = {"train": train_examples, "val": splits["val"], "test": splits["test"]}
    return {
        "sizes": {k: len(v) for k, v in parts.items()},
        "counts": {k: kind.label_counts([kind.gold(e) for e in v]) for k, v in parts.items()},
        "hash": data_hash(train_examples),
    }


def build(backbone: Backbone, task: TaskSpec, settings: TrainSettings) -> MultiAdapterModel:
    """The served composition with one fresh adapter, set up for training."""
    model = MultiAdapterModel(backbone)
    head = build_head(task.kind, backbone.hidden_size, task.num_labels, settings.head_dropout)
    # The encoder's own initialisation for the new classifier (BERT: normal, std 0.02), as a
    # transformers *ForTokenClassification model starts.
    std = getattr(backbone.encoder.config, "initializer_range", None)
    if std:
        torch.nn.init.normal_(head.classifier.weight, std=std)
        torch.nn.init.zeros_(head.classifier.bias)
    model.add_adapter(
        SLOT,
        task,
        head,
        peft_config=peft_config(settings),
        max_length=settings.max_length,
        long_input=settings.reading(),
    )
    if settings.method is Method.full:
        backbone.encoder.requires_grad_(True)
    if settings.attention_dropout is not None:
        set_attention_dropout(backbone.encoder, settings.attention_dropout)
    return model


def set_attention_dropout(encoder: torch.nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities (BERT-style ``attention.self.dropout``);
    returns how many modules it changed. The saved config is left as it is."""
    changed = 0
    for name, module in encoder.named_modules():
        if isinstance(module, torch.nn.Dropout) and name.endswith(("attention.self.dropout", "attention.dropout")):
            module.p = p
            changed += 1
    return changed


def batch_loss(model: MultiAdapterModel, picked: list[EncodedItem], pool: str) -> torch.Tensor:
    """The training loss of a batch of encoded examples; an example of several rows (a note read
    by chunks) is one prediction, its rows' logits pooled by ``pool``."""
    rows = [row for item in picked for row in item.rows]
    groups = [g for g, item in enumerate(picked) for _ in item.rows]
    return model.loss(rows, SLOT, groups, pool)


def optimizer_for(model: MultiAdapterModel, settings: TrainSettings) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.learning_rate())


def trainable_state(model: MultiAdapterModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train(
    task: TaskSpec,
    splits: dict[str, list[Example]],
    settings: TrainSettings,
    out_dir: str | Path,
    backbone: Backbone | str | None = None,
    name: str | None = None,
    progress: bool = True,
) -> TrainResult:
    out = Path(out_dir)
    for split in ("train", "val", "test"):
        if not splits.get(split):
            raise ValueError(f"the {split!r} split is empty")
    seed_everything(settings.seed)
    if settings.steady_memory:
        steady_heap()
    device = pick_device(settings.device)
    if settings.precision != "fp32" and device.type != "cuda":
        raise ValueError(f"--precision {settings.precision} needs a CUDA device; use fp32 on CPU")
    backbone = backbone if isinstance(backbone, Backbone) else load_backbone(backbone, device="cpu")
    train_examples = splits["train"]
    if settings.few_shot:
        train_examples = few_shot(train_examples, settings.few_shot, seed=settings.seed)
    model = build(backbone, task, settings).to(device)
    encoder = model.slots[SLOT].encoder
    kind = model.slots[SLOT].kind
    items = [kind.encode_example(encoder, e) for e in train_examples]  # one row each, or a note's chunks
    val_items = [kind.encode_example(encoder, e) for e in splits["val"]]
    lengths = [item.longest for item in items]
    if settings.class_weights and kind.label_answers:  # inverse label frequency, mean weight 1
        counts = torch.bincount(torch.tensor([item.rows[0].label for item in items]), minlength=task.num_labels)
        weight = counts.sum() / (task.num_labels * counts.clamp(min=1).float())
        model.slots[SLOT].torch_head().class_weight = weight
    metric = primary_metric(task)

    steps_per_epoch = -(-len(items) // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    optimizer = optimizer_for(model, settings)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    schedule = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    autocast = _autocast(device, settings.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=settings.precision == "fp16")
    generator = torch.Generator().manual_seed(settings.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    best, best_score, best_epoch, time_to_best = None, float("-inf"), 0, 0.0
    start = time.perf_counter()
    stopped_by_budget = stopped_early = False
    history = []
    loop_seconds, seen = 0.0, 0  # optimiser steps only (no evaluation): the training throughput
    # the same LoRA math and the same dropout, fewer passes over memory and cheaper random masks
    with fused_lora(model) as fused, fast_dropout(model) as dropouts:
        for epoch in range(1, settings.epochs + 1):
            model.train()
            batches = epoch_batches(lengths, settings.batch_size, generator, settings.group_by_length)
            bar = tqdm(
                batches, desc=f"epoch {epoch}/{settings.epochs}", disable=not progress, leave=False, unit="batch"
            )
            losses = []
            loop_start = time.perf_counter()
            for indices in bar:
                picked = [items[j] for j in indices]
                with autocast:
                    loss = batch_loss(model, picked, settings.chunk_pool)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings.max_grad_norm:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                losses.append(loss.item())
                seen += len(picked)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if settings.time_budget and time.perf_counter() - start > settings.time_budget:
                    stopped_by_budget = True
                    break
            loop_seconds += time.perf_counter() - loop_start
            val = evaluate(model, SLOT, splits["val"], settings.eval_batch_size, items=val_items)
            score = val.metrics.get(metric, float("-inf"))
            elapsed = time.perf_counter() - start
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": sum(losses) / max(len(losses), 1),
                    f"val_{metric}": score,
                    "elapsed_s": round(elapsed, 3),
                }
            )
            _write_log(log_path, history)
            if progress:
                tqdm.write(f"epoch {epoch}: loss {history[-1]['train_loss']:.4f}  val {metric} {score:.4f}")
            if score > best_score:
                best, best_score, best_epoch, time_to_best = trainable_state(model), score, epoch, elapsed
            if stopped_by_budget:
                break
            if settings.patience and epoch - best_epoch >= settings.patience and epoch < settings.epochs:
                stopped_early = True  # no better validation score for `patience` epochs
                break
    train_seconds = time.perf_counter() - start
    if best is not None:
        model.load_state_dict(best, strict=False)
    model.eval()
    slot = model.slots[SLOT]
    calibration = None
    with fused_lora(model):  # the validation passes ran fused: so do these
        if kind.label_answers and (settings.calibrate or settings.threshold_rule != "argmax"):
            val = evaluate(model, SLOT, splits["val"], settings.eval_batch_size, items=val_items)
            method = settings.calibration if settings.calibrate else "none"
            slot.readout, calibration = fit_on_validation(task, val, settings.threshold_rule, method)
        test = evaluate(
            model, SLOT, splits["test"], settings.eval_batch_size, bootstrap=settings.bootstrap, seed=settings.seed
        )
    if calibration is not None:
        calibration = report_on_test(
            task, test, slot.readout, calibration, out / "reliability.png", settings.bootstrap, settings.seed
        )

    cost = {
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_seconds, 3),
        "time_to_best_s": round(time_to_best, 3),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_by_time_budget": stopped_by_budget,
        "stopped_early": stopped_early,
        "fused_lora_layers": fused,
        "fast_dropout_layers": dropouts,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        "eval_examples_per_s": round(test.throughput, 2),
        "train_examples_per_s": round(seen / loop_seconds, 3) if loop_seconds else None,
        "train_examples": len(items),
        "device": str(device),
    }
    metrics: dict[str, float | None] = {f"test_{k}": v for k, v in test.metrics.items()}
    metrics.update({f"val_{metric}": best_score if best is not None else None})
    # The artifact gets its own folder: the registry accepts only artifact files.
    artifact = _save(
        out / ARTIFACT_DIR, model, task, settings, backbone, test, cost, train_examples, splits, name, calibration
    )
    record = {
        "metrics": metrics,
        "intervals": {f"test_{k}": v for k, v in test.intervals.items()},
        "calibration": calibration,
        "readout": slot.readout.model_dump(mode="json"),
        "cost": cost,
        "settings": json.loads(settings.model_dump_json()),
    }
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainResult(artifact=artifact, metrics=metrics, cost=cost, intervals=test.intervals)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _write_log(path: Path, history: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _save(out, model, task, settings, backbone, test: EvalResult, cost, train_examples, splits, name, calibration):
    ok, reason = servable(settings.method)
    manifest = Manifest(
        name=name or f"{task.name}-{settings.method.value}",
        task=task,
        base=BaseRef(name=backbone.name, fingerprint=backbone.fingerprint, hidden_size=backbone.hidden_size),
        method=settings.method,
        head=HeadRef(kind=task.kind, num_labels=task.num_labels, dropout=settings.head_dropout),
        max_length=settings.max_length,
        long_input=settings.reading(),
        servable=ok,
        not_servable_reason=reason,
        metrics={k: v for k, v in test.metrics.items()},
        metrics_ci=test.intervals,
        readout=model.slots[SLOT].readout,
        calibration=calibration,
        trainable_params=cost["trainable_params"],
        total_params=cost["total_params"],
        training={**json.loads(settings.model_dump_json()), "cost": cost},
        data_hash=data_hash(train_examples),
        data=data_summary(task, train_examples, splits),
    )
    examples = smoke_examples(model, SLOT, splits["test"])
    # The manifest records the base the adapter was trained on: for full fine-tuning
    # that is the original base, not the tuned copy saved beside it.
    return save_from_model(out, model, SLOT, manifest, examples, with_encoder=settings.method is Method.full)

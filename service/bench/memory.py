"""Resident memory per extra adapter vs a full copy of the model, measured in this process."""

from __future__ import annotations

import copy
import ctypes
import gc

import psutil
import torch
from peft import LoraConfig

from bedside.adapters.backbones import Backbone
from bedside.adapters.heads import build_head
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tasks import PRESETS

from .model import TARGETS


def rss_mb() -> float:
    gc.collect()
    try:  # hand freed heap pages back, so RSS shows what is held
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return psutil.Process().memory_info().rss / 1e6


def _lora_state(model: MultiAdapterModel, config: LoraConfig) -> dict[str, torch.Tensor]:
    """Random trained-looking LoRA weights for every targeted layer of the base."""
    from peft import get_peft_model, get_peft_model_state_dict

    peft = get_peft_model(copy.deepcopy(model.backbone.encoder), config)
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft).items()}


def bench_memory(
    backbone: Backbone, adapters: int = 32, rank: int = 8, targets: str = "qkv", step: int = 8, lora: str = "bank"
) -> tuple[list[dict], dict]:
    """RSS after every ``step`` adapters; the per-adapter slope against a full model copy."""
    torch.manual_seed(0)
    model = MultiAdapterModel(backbone, lora=lora).eval()
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS[targets], init_lora_weights=False)
    state = _lora_state(model, config)
    task = PRESETS["mortality"]
    adapter_params = sum(v.numel() for v in state.values())
    head_params = sum(p.numel() for p in build_head(task.kind, backbone.hidden_size, task.num_labels).parameters())
    start = rss_mb()
    rows = [{"adapters": 0, "rss_mb": start, "added_mb": 0.0}]
    for i in range(1, adapters + 1):
        head = build_head(task.kind, backbone.hidden_size, task.num_labels)
        model.add_adapter(f"a{i}", task, head, config, {k: v.clone() for k, v in state.items()})
        if i % step == 0:
            now = rss_mb()
            rows.append({"adapters": i, "rss_mb": now, "added_mb": now - start})
    before_copy = rss_mb()
    clone = copy.deepcopy(backbone.encoder)
    full_copy_mb = rss_mb() - before_copy
    full_params = sum(p.numel() for p in clone.parameters())
    del clone
    per_adapter_mb = (rows[-1]["rss_mb"] - rows[0]["rss_mb"]) / adapters
    summary = {
        "lora_path": lora,
        "rank": rank,
        "targets": targets,
        "adapters": adapters,
        "per_adapter_mb": per_adapter_mb,
        "full_copy_mb": full_copy_mb,
        "per_adapter_over_full_copy": per_adapter_mb / full_copy_mb,
        "per_adapter_params": adapter_params + head_params,
        "full_copy_params": full_params,
        "per_adapter_params_over_full_copy": (adapter_params + head_params) / full_params,
    }
    return rows, summary

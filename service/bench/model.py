"""Model-level benchmark: bare base vs one adapter vs four mixed adapters (three head kinds).

Every configuration runs in interleaved rounds in one process, so ratios against
the bare forward measured in the same run are fair on a noisy machine.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict

from bedside.adapters.artifact import BaseRef, HeadRef, Manifest, Method
from bedside.adapters.backbones import Backbone
from bedside.adapters.heads import build_head
from bedside.adapters.kinds import strategy
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tasks import PRESETS, TaskKind

TARGETS = {
    "qkv": ["query", "key", "value"],
    "all-linear": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
}


@dataclass
class Case:
    name: str
    run: Callable[[], Any]


def synthetic_rows(backbone: Backbone, batch: int, length: int, kinds: list[TaskKind], seed: int = 0):
    """Rows of exactly ``length`` tokens, cycling through the given head kinds."""
    g = torch.Generator().manual_seed(seed)
    tok = backbone.tokenizer
    low = max(tok.all_special_ids) + 1
    rows = []
    for i in range(batch):
        ids = (
            [tok.cls_token_id] + torch.randint(low, len(tok), (length - 2,), generator=g).tolist() + [tok.sep_token_id]
        )
        rows.append(strategy(kinds[i % len(kinds)]).placeholder_row(ids))
    return rows


def bench_manifest(backbone: Backbone, name: str, max_length: int = 512) -> Manifest:
    """The manifest of a random benchmark adapter for preset task ``name`` on ``backbone``."""
    task = PRESETS[name]
    return Manifest(
        name=f"{name}-bench",
        task=task,
        method=Method.lora,
        max_length=max_length,
        base=BaseRef(name=backbone.name, fingerprint=backbone.fingerprint, hidden_size=backbone.hidden_size),
        head=HeadRef(kind=task.kind, num_labels=task.num_labels),
    )


def build_models(backbone: Backbone, targets: list[str], rank: int = 8):
    """The same four random LoRA adapters through PEFT and through the bank."""
    peft_model = MultiAdapterModel(copy.deepcopy(backbone))
    torch.manual_seed(0)
    for task in PRESETS.values():
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False)
        peft_model.add_adapter(task.name, task, build_head(task.kind, backbone.hidden_size, task.num_labels), config)
    bank_model = MultiAdapterModel(copy.deepcopy(backbone), lora="bank")
    peft: Any = peft_model.peft  # every adapter above is a PEFT LoRA
    for name, slot in peft_model.slots.items():
        state = get_peft_model_state_dict(peft, adapter_name=str(slot.peft_name))
        bank_model.add_adapter(
            name,
            slot.task,
            copy.deepcopy(slot.torch_head()),
            peft.peft_config[slot.peft_name],
            {k: v.detach().clone() for k, v in state.items()},
        )
    return peft_model.eval(), bank_model.eval()


def time_cases(cases: list[Case], rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call, cases interleaved round by round."""
    samples: dict[str, list[float]] = {c.name: [] for c in cases}
    with torch.inference_mode():
        for r in range(warmup + rounds):
            for case in cases:
                start = time.perf_counter()
                case.run()
                if r >= warmup:
                    samples[case.name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_model(
    backbone: Backbone, batches=(1, 8, 32, 64), lengths=(128, 256, 512), targets="qkv", rounds: int = 5, progress=None
) -> list[dict]:
    peft_model, bank_model = build_models(backbone, TARGETS[targets])
    names4 = list(PRESETS)
    bare = backbone.encoder.eval()
    results = []
    for length in lengths:
        for batch in batches:
            kinds = [PRESETS[n].kind for n in names4]
            rows = synthetic_rows(backbone, batch, length, kinds)
            mixed = [names4[i % 4] for i in range(batch)]
            one = ["mortality"] * batch
            ids, mask = peft_model.pad(rows)
            check = max((a - b).abs().max().item() for a, b in zip(peft_model(rows, mixed), bank_model(rows, mixed)))
            cases = [
                Case("bare", lambda: bare(input_ids=ids, attention_mask=mask)),
                Case("peft_one", lambda: peft_model(rows, one)),
                Case("peft_mixed4", lambda: peft_model(rows, mixed)),
                Case("bank_one", lambda: bank_model(rows, one)),
                Case("bank_mixed4", lambda: bank_model(rows, mixed)),
            ]
            seconds = time_cases(cases, rounds=rounds)
            row = {
                "batch": batch,
                "length": length,
                "targets": targets,
                "max_abs_diff_bank_vs_peft": check,
                **{f"{k}_s": v for k, v in seconds.items()},
                **{f"{k}_ratio": v / seconds["bare"] for k, v in seconds.items() if k != "bare"},
                "bare_seq_per_s": batch / seconds["bare"],
            }
            results.append(row)
            if progress:
                progress(row)
    return results

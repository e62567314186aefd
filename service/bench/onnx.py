"""ONNX Runtime vs torch eager, same adapters, same rows, interleaved in one process.

Four random LoRA adapters (one per preset task, three head kinds) are saved as real
artifacts and exported both ways: design A (``merged``: one graph per adapter, fp32 and
int8 on CPU, fp32 and fp16 on CUDA) and design B (``shared``: one encoder graph, LoRA
weights as inputs, fp32). Torch eager is the service's torch path (the LoRA bank).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from bedside.adapters.artifact import BaseRef, HeadRef, Manifest, Method, load_artifact, save_from_model
from bedside.adapters.backbones import Backbone
from bedside.adapters.onnx.export import export_artifact
from bedside.adapters.onnx.session import CPU, CUDA, OnnxModel
from bedside.adapters.onnx.shared import SharedOnnxModel, export_shared, linear_targets
from bedside.adapters.tasks import PRESETS, TaskKind

from .model import TARGETS, Case, build_models, synthetic_rows, time_cases


def _manifest(backbone: Backbone, name: str) -> Manifest:
    task = PRESETS[name]
    return Manifest(
        name=f"{name}-bench",
        task=task,
        method=Method.lora,
        max_length=512,
        base=BaseRef(name=backbone.name, fingerprint=backbone.fingerprint, hidden_size=backbone.hidden_size),
        head=HeadRef(kind=task.kind, num_labels=task.num_labels),
    )


def _max_prob_diff(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(
        (torch.softmax(g.float().cpu(), -1) - torch.softmax(w.float().cpu(), -1)).abs().max().item()
        for g, w in zip(got, want)
    )


def variants_for(provider: str) -> list[str]:
    return ["fp32", "fp16"] if provider == CUDA else ["fp32", "int8"]


def bench_onnx(
    backbone: Backbone,
    batches=(1, 8, 32),
    length: int = 128,
    rounds: int = 5,
    provider: str = CPU,
    work: Path | None = None,
    progress=None,
) -> tuple[list[dict], dict]:
    """Rows per batch size, and a summary (graph sizes, fused operators, provider)."""
    tmp = Path(tempfile.mkdtemp(prefix="bedside-bench-onnx-", dir=work))
    try:
        return _bench(backbone, batches, length, rounds, provider, tmp, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(backbone, batches, length, rounds, provider, tmp, progress):
    on_cpu = next(backbone.encoder.parameters()).device.type == "cpu"
    peft_model, bank_model = build_models(backbone, TARGETS["qkv"])
    names = list(PRESETS)
    artifacts = {n: save_from_model(tmp / "artifacts" / n, peft_model, n, _manifest(backbone, n)) for n in names}
    exporter = backbone if on_cpu else _cpu_copy(backbone)
    variants = variants_for(provider)
    merged: dict[str, OnnxModel] = {}
    summary = {"provider": provider, "variants": variants, "graph_mb_per_adapter": {}, "fused_ops": {}}
    for variant in variants:
        model = OnnxModel(backbone.tokenizer, provider)
        for n in names:
            exported = export_artifact(artifacts[n], exporter, tmp / "cache", variant)
            model.add(n, exported, PRESETS[n], 512)
            summary["graph_mb_per_adapter"][variant] = exported.model_path.stat().st_size / 1e6
            summary["fused_ops"][variant] = {k: v for k, v in exported.fused_ops.items() if v}
        merged[variant] = model
    graph, meta = export_shared(exporter, linear_targets(exporter), tmp / "cache")
    summary["shared_graph_mb"] = graph.stat().st_size / 1e6
    shared = SharedOnnxModel(exporter, graph, meta, provider)
    for n in names:
        shared.add(n, load_artifact(artifacts[n]))

    results = []
    for batch in batches:
        one_rows = synthetic_rows(backbone, batch, length, [TaskKind.sequence])
        one = ["mortality"] * batch
        mixed_rows = synthetic_rows(backbone, batch, length, [PRESETS[n].kind for n in names])
        mixed = [names[i % 4] for i in range(batch)]
        with torch.inference_mode():
            want_one, want_mixed = bank_model(one_rows, one), bank_model(mixed_rows, mixed)
        cases = [
            Case("torch_one", lambda: bank_model(one_rows, one)),
            Case("torch_mixed4", lambda: bank_model(mixed_rows, mixed)),
        ]
        row = {"batch": batch, "length": length}
        for variant, model in merged.items():
            cases += [
                Case(f"merged_{variant}_one", lambda m=model: m(one_rows, one)),
                Case(f"merged_{variant}_mixed4", lambda m=model: m(mixed_rows, mixed)),
            ]
            row[f"merged_{variant}_prob_diff"] = max(
                _max_prob_diff(model(one_rows, one), want_one), _max_prob_diff(model(mixed_rows, mixed), want_mixed)
            )
        cases.append(Case("shared_fp32_mixed4", lambda: shared(mixed_rows, mixed)))
        row["shared_fp32_prob_diff"] = _max_prob_diff(shared(mixed_rows, mixed), want_mixed)
        seconds = time_cases(cases, rounds=rounds)
        row.update({f"{k}_s": v for k, v in seconds.items()})
        for name, value in seconds.items():  # speed-up: how many times the torch throughput
            if not name.startswith("torch"):
                base = seconds["torch_one"] if name.endswith("_one") else seconds["torch_mixed4"]
                row[f"{name}_speedup"] = base / value
        row["torch_one_seq_per_s"] = batch / seconds["torch_one"]
        results.append(row)
        if progress:
            progress(row)
    return results, summary


def _cpu_copy(backbone: Backbone) -> Backbone:
    """The exporter works from CPU fp32 weights; a GPU backbone is copied, not moved."""
    import copy

    return Backbone(
        copy.deepcopy(backbone.encoder).float().cpu(), backbone.tokenizer, backbone.name, backbone.fingerprint
    )

"""ONNX Runtime vs torch eager, same adapters, same rows, interleaved in one process.

Four random LoRA adapters (one per preset task, three head kinds; rank 16 on every Linear
like the demo adapters, or on query/key/value) are saved as real artifacts and exported
both ways: design A (``merged``: one graph per adapter, fp32 and int8 on CPU, fp32 and fp16
on CUDA) and design B (``shared``: one encoder graph, LoRA weights as inputs; fp32, and on
CPU int8 base MatMuls with the LoRA path in fp32). Torch eager is the service's torch path
(the LoRA bank); on CPU also the bank over a ``torch.ao`` dynamically quantised base, the
alternative int8 mechanism. The bare fp32 encoder forward is the common baseline, and on
CPU each design's resident memory for four tasks is measured in a fresh process.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from bedside.adapters.artifact import load_artifact, save_from_model
from bedside.adapters.backbones import Backbone
from bedside.adapters.onnx.export import export_artifact
from bedside.adapters.onnx.session import CPU, CUDA, OnnxModel
from bedside.adapters.onnx.shared import SharedOnnxModel, export_shared, linear_targets
from bedside.adapters.tasks import PRESETS, TaskKind

from .model import TARGETS, Case, bench_manifest, build_models, synthetic_rows, time_cases

RANK = 16  # the demo adapters' rank


def _max_prob_diff(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(
        (torch.softmax(g.float().cpu(), -1) - torch.softmax(w.float().cpu(), -1)).abs().max().item()
        for g, w in zip(got, want)
    )


def variants_for(provider: str) -> list[str]:
    return ["fp32", "fp16"] if provider == CUDA else ["fp32", "int8"]


def shared_variants_for(provider: str) -> list[str]:
    return ["fp32"] if provider == CUDA else ["fp32", "int8"]


def bench_onnx(
    backbone: Backbone,
    batches=(1, 8, 32),
    length: int = 128,
    rounds: int = 5,
    provider: str = CPU,
    work: Path | None = None,
    progress=None,
    targets: str = "all-linear",
) -> tuple[list[dict], dict]:
    """Rows per batch size, and a summary (graph sizes, fused operators, provider, memory)."""
    tmp = Path(tempfile.mkdtemp(prefix="bedside-bench-onnx-", dir=work))
    try:
        return _bench(backbone, batches, length, rounds, provider, tmp, progress, targets)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(backbone, batches, length, rounds, provider, tmp, progress, targets):
    on_cpu = next(backbone.encoder.parameters()).device.type == "cpu"
    peft_model, bank_model = build_models(backbone, TARGETS[targets], rank=RANK)
    names = list(PRESETS)
    artifacts = {n: save_from_model(tmp / "artifacts" / n, peft_model, n, bench_manifest(backbone, n)) for n in names}
    exporter = backbone if on_cpu else _cpu_copy(backbone)
    variants = variants_for(provider)
    merged: dict[str, OnnxModel] = {}
    summary: dict = {
        "provider": provider,
        "variants": variants,
        "targets": targets,
        "rank": RANK,
        "graph_mb_per_adapter": {},
        "fused_ops": {},
        "shared_graph_mb": {},
    }
    merged_graphs: dict[str, list[Path]] = {}
    for variant in variants:
        model = OnnxModel(backbone.tokenizer, provider)
        for n in names:
            exported = export_artifact(artifacts[n], exporter, tmp / "cache", variant)
            model.add(n, exported, PRESETS[n], 512)
            merged_graphs.setdefault(variant, []).append(exported.model_path)
            summary["graph_mb_per_adapter"][variant] = exported.model_path.stat().st_size / 1e6
            summary["fused_ops"][variant] = {k: v for k, v in exported.fused_ops.items() if v}
        merged[variant] = model
    layer_names = tuple(sorted({t.rsplit(".", 1)[-1] for t in TARGETS[targets]}))
    shared: dict[str, SharedOnnxModel] = {}
    shared_graphs: dict[str, Path] = {}
    for variant in shared_variants_for(provider):
        graph, meta = export_shared(exporter, linear_targets(exporter, layer_names), tmp / "cache", variant=variant)
        summary["shared_graph_mb"][variant] = graph.stat().st_size / 1e6
        shared[variant] = SharedOnnxModel(exporter, graph, meta, provider)
        shared_graphs[variant] = graph
        for n in names:
            shared[variant].add(n, load_artifact(artifacts[n]))
    if provider == CPU:
        summary["resident_mb"] = _resident(
            merged_graphs["int8"], shared_graphs["int8"], length, len(backbone.tokenizer)
        )
    quantised = _torch_int8_bank(bank_model) if on_cpu else None
    bare = backbone.encoder.eval()

    results = []
    for batch in batches:
        one_rows = synthetic_rows(backbone, batch, length, [TaskKind.sequence])
        one = ["mortality"] * batch
        mixed_rows = synthetic_rows(backbone, batch, length, [PRESETS[n].kind for n in names])
        mixed = [names[i % 4] for i in range(batch)]
        ids, mask = bank_model.pad(mixed_rows)
        with torch.inference_mode():
            want_one, want_mixed = bank_model(one_rows, one), bank_model(mixed_rows, mixed)
        cases = [
            Case("torch_bare", lambda: bare(input_ids=ids, attention_mask=mask)),
            Case("torch_one", lambda: bank_model(one_rows, one)),
            Case("torch_mixed4", lambda: bank_model(mixed_rows, mixed)),
        ]
        row = {"batch": batch, "length": length}
        if quantised is not None:
            cases.append(Case("torch_int8_mixed4", lambda: quantised(mixed_rows, mixed)))
            row["torch_int8_prob_diff"] = _max_prob_diff(quantised(mixed_rows, mixed), want_mixed)
        for variant, model in merged.items():
            cases += [
                Case(f"merged_{variant}_one", lambda m=model: m(one_rows, one)),
                Case(f"merged_{variant}_mixed4", lambda m=model: m(mixed_rows, mixed)),
            ]
            row[f"merged_{variant}_prob_diff"] = max(
                _max_prob_diff(model(one_rows, one), want_one), _max_prob_diff(model(mixed_rows, mixed), want_mixed)
            )
        for variant, model in shared.items():
            cases += [
                Case(f"shared_{variant}_one", lambda m=model: m(one_rows, one)),
                Case(f"shared_{variant}_mixed4", lambda m=model: m(mixed_rows, mixed)),
            ]
            row[f"shared_{variant}_prob_diff"] = _max_prob_diff(model(mixed_rows, mixed), want_mixed)
        seconds = time_cases(cases, rounds=rounds)
        row.update({f"{k}_s": v for k, v in seconds.items()})
        for name, value in seconds.items():  # speed-up: how many times the torch throughput
            if name.startswith("torch_") and name != "torch_int8_mixed4":
                continue
            base = seconds["torch_one"] if name.endswith("_one") else seconds["torch_mixed4"]
            row[f"{name}_speedup"] = base / value
            row[f"{name}_vs_bare"] = seconds["torch_bare"] / value
        if "shared_int8_mixed4" in seconds:  # the one int8 base for four tasks vs one task's own graph
            row["shared_int8_mixed4_vs_merged_int8_one"] = seconds["merged_int8_one"] / seconds["shared_int8_mixed4"]
        row["torch_one_seq_per_s"] = batch / seconds["torch_one"]
        results.append(row)
        if progress:
            progress(row)
    return results, summary


def _torch_int8_bank(bank_model):
    """The bank over a copy of the base whose Linear layers are dynamically quantised
    (``torch.ao``): the torch alternative to the shared int8 graph."""
    import copy
    import warnings

    from torch import nn

    model = copy.deepcopy(bank_model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        torch.ao.quantization.quantize_dynamic(model.backbone.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model


def _resident(merged_int8: list[Path], shared_int8: Path, length: int, vocab: int) -> dict[str, float]:
    """RSS growth for four tasks: four merged graphs, the shared graph with four adapters,
    and one merged graph (one int8 encoder) as the unit."""
    from .onnx_memory import resident_mb

    out = {
        "merged_int8_one_mb": resident_mb(merged_int8[:1], vocab, length=length),
        "merged_int8_four_mb": resident_mb(merged_int8, vocab, length=length),
        "shared_int8_four_mb": resident_mb([shared_int8], vocab, length=length, adapters=4),
    }
    out["merged_int8_four_vs_one"] = out["merged_int8_four_mb"] / out["merged_int8_one_mb"]
    out["shared_int8_four_vs_one"] = out["shared_int8_four_mb"] / out["merged_int8_one_mb"]
    return out


def _cpu_copy(backbone: Backbone) -> Backbone:
    """The exporter works from CPU fp32 weights; a GPU backbone is copied, not moved."""
    import copy

    return Backbone(
        copy.deepcopy(backbone.encoder).float().cpu(), backbone.tokenizer, backbone.name, backbone.fingerprint
    )

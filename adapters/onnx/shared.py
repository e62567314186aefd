"""Design B ("shared"): one encoder graph for every adapter, LoRA weights as graph inputs.

Each targeted Linear computes ``x W^T + b + (x A_row) B_row``, the sum of
:class:`adapters.bank.BankedLinear`. The runtime stacks every resident adapter's ``A^T``
[in, r] and ``(B·scale)^T`` [r, out] into ``A_i`` [N, in, r] and ``B_i`` [N, r, out] (zeros
where an adapter does not target a layer, ranks padded to the largest), and each row names
its adapter in ``row_adapter`` [B]: the graph gathers each row's own pair, so a row costs
its own rank whatever the number of resident adapters. Adding, removing or swapping an
adapter re-stacks arrays: no re-export, no new session. The graph returns the last hidden
states; heads run in torch afterwards.

Variant ``int8`` quantises only the base's constant MatMuls (dynamic, per channel): the
LoRA MatMuls, whose weights are inputs, stay fp32 beside them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..artifact import Artifact, ArtifactError, Method, check_base
from ..backbones import Backbone
from ..bank import lora_weights
from ..batch import Batch
from ..encoding import EncodedRow, Encoder, pad_rows
from ..interface import Slot, head_logits, predict_rows
from .export import (
    EXPORT_FORMAT,
    META_FILE,
    OPSET,
    ExportError,
    default_cache_dir,
    int8_weight_bits,
    optimize,
    publish,
    quantize_int8,
)
from .session import open_session

SHARED_FILE = "shared.onnx"


class _InputLora(nn.Module):
    """A Linear plus a low-rank delta whose weights arrive as tensors at forward time."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.a = self.b = None  # each row's A^T, B^T: set by SharedEncoder.forward per call

    def forward(self, x):
        return self.base(x) + (x @ self.a) @ self.b  # [B,T,in]·[B,in,r]·[B,r,out]


class SharedEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, targets: list[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.targets = list(targets)
        self.layers = []
        for path in self.targets:
            parent_path, _, attr = path.rpartition(".")
            parent = encoder.get_submodule(parent_path) if parent_path else encoder
            base = getattr(parent, attr)
            if not isinstance(base, nn.Linear):
                raise ExportError(f"{path} is not a Linear layer of the base")
            wrapped = _InputLora(base)
            setattr(parent, attr, wrapped)
            self.layers.append(wrapped)

    def forward(self, input_ids, attention_mask, row_adapter, *weights):
        for i, layer in enumerate(self.layers):
            layer.a, layer.b = weights[2 * i][row_adapter], weights[2 * i + 1][row_adapter]
        try:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            for layer in self.layers:
                layer.a = layer.b = None


#: The last names of every Linear in a BERT layer: a shared graph with these serves any LoRA target set.
BERT_LINEARS = ("query", "key", "value", "dense")


def linear_targets(backbone: Backbone, names=("query", "key", "value")) -> list[str]:
    """Every Linear of the encoder whose last name is in ``names`` (PEFT's target_modules)."""
    return [
        path
        for path, module in backbone.encoder.named_modules()
        if isinstance(module, nn.Linear) and path.rsplit(".", 1)[-1] in names
    ]


SHARED_VARIANTS = ("fp32", "int8")


def export_shared(
    backbone: Backbone,
    targets: list[str],
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    variant: str = "fp32",
) -> tuple[Path, dict]:
    """Export (or reuse) the shared graph for ``targets`` in ``variant``; return its path and
    metadata. int8 is derived from the cached fp32 export."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if variant not in SHARED_VARIANTS:
        raise ExportError(f"the shared graph comes in {', '.join(SHARED_VARIANTS)}, not {variant!r}")
    if any(isinstance(m, BaseTunerLayer) for m in backbone.encoder.modules()):
        raise ExportError("the backbone's encoder has PEFT layers injected: export from a freshly loaded backbone")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    bits = f"bits={int8_weight_bits()}" if variant == "int8" else ""  # a graph quantised for this CPU
    key_text = "\n".join(
        [EXPORT_FORMAT, "shared-gather", variant, bits, f"opset={OPSET}", backbone.fingerprint, *targets]
    )
    folder = cache / ("shared-" + hashlib.sha256(key_text.encode()).hexdigest()[:32])
    if not rebuild and (folder / SHARED_FILE).is_file() and (folder / META_FILE).is_file():
        return folder / SHARED_FILE, json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".shared-", dir=cache))
    try:
        if variant == "fp32":
            meta = _export_fp32(backbone, targets, work)
        else:
            fp32_graph, fp32_meta = export_shared(backbone, targets, cache, rebuild=False)
            quantize_int8(fp32_graph, work / SHARED_FILE, const_weights_only=True)
            meta = {**fp32_meta, "derived_from": fp32_graph.parent.name}
        meta["variant"] = variant
        publish(work, folder, meta)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder / SHARED_FILE, meta


def _export_fp32(backbone: Backbone, targets: list[str], work: Path) -> dict:
    encoder = copy.deepcopy(backbone.encoder).float().cpu().eval()
    try:
        encoder.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        encoder.config._attn_implementation = "eager"
    module = SharedEncoder(encoder, targets).eval()
    adapters, rank = 2, 3  # example sizes: both axes are dynamic
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    row_adapter = torch.tensor([1, 0])
    weights, names = [], []
    dynamic = {
        "input_ids": {0: "batch", 1: "length"},
        "attention_mask": {0: "batch", 1: "length"},
        "row_adapter": {0: "batch"},
        "hidden": {0: "batch", 1: "length"},
    }
    for i, layer in enumerate(module.layers):
        weights += [
            torch.zeros(adapters, layer.base.in_features, rank),
            torch.zeros(adapters, rank, layer.base.out_features),
        ]
        names += [f"A_{i}", f"B_{i}"]
        dynamic[f"A_{i}"], dynamic[f"B_{i}"] = {0: "adapters", 2: "rank"}, {0: "adapters", 1: "rank"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (ids, mask, row_adapter, *weights),
            str(work / "raw.onnx"),
            input_names=["input_ids", "attention_mask", "row_adapter", *names],
            output_names=["hidden"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    config = backbone.encoder.config
    fused = optimize(work / "raw.onnx", work / SHARED_FILE, config.num_attention_heads, config.hidden_size)
    (work / "raw.onnx").unlink()
    return {
        "format": EXPORT_FORMAT,
        "design": "shared",
        "opset": OPSET,
        "targets": targets,
        "weight_inputs": names,
        "backbone": backbone.name,
        "backbone_fingerprint": backbone.fingerprint,
        "fused_ops": fused,
    }


class SharedOnnxModel:
    """Every adapter through one shared-encoder session, as an
    :class:`~adapters.interface.AdapterModel`. Adapters are packed, not exported."""

    def __init__(
        self,
        backbone: Backbone,
        graph: Path,
        meta: dict,
        provider: str | None = None,
        threads: int | None = None,
        provider_options: dict | None = None,
    ) -> None:
        self.tokenizer = backbone.tokenizer
        self.fingerprint = backbone.fingerprint
        self.hidden_size = backbone.hidden_size
        self.targets: list[str] = meta["targets"]
        self.session = open_session(graph, provider, threads, provider_options)
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self._dims = {path: (int(shapes[f"A_{i}"][1]), int(shapes[f"B_{i}"][2])) for i, path in enumerate(self.targets)}
        self.slots: dict[str, Slot] = {}
        self._packed = None

    def add(self, name: str, artifact: Artifact) -> None:
        m = artifact.manifest
        check_base(m, self.fingerprint)
        if m.method is not Method.lora or getattr(artifact.peft_config, "use_dora", False):
            raise ExportError("the shared graph serves plain LoRA adapters only")
        if m.base.hidden_size != self.hidden_size:
            raise ArtifactError("head hidden size does not match the base")
        weights = {}
        for path, (a, b) in lora_weights(artifact.peft_config, artifact.peft_state).items():
            if path not in self._dims:
                raise ExportError(
                    f"{path} is not a LoRA input of the shared graph (targets: "
                    f"{', '.join(sorted({t.rsplit('.', 1)[-1] for t in self.targets}))})"
                )
            weights[path] = (a.numpy().astype(np.float32), b.numpy().astype(np.float32))
        ranks = {a.shape[0] for a, _ in weights.values()}
        rank = max(ranks) if ranks else 0
        weights = {
            p: (np.pad(a, ((0, rank - a.shape[0]), (0, 0))), np.pad(b, ((0, 0), (0, rank - b.shape[1]))))
            for p, (a, b) in weights.items()
        }  # rank_pattern: zero rows add nothing
        self.slots[name] = Slot(
            name,
            m.task,
            Encoder(self.tokenizer, m.task, max_length=m.max_length, long_input=m.long_input),
            head=artifact.build_head().eval(),
            lora=weights,
            rank=rank,
            readout=m.readout,
        )
        self._packed = None

    def remove(self, name: str) -> None:
        del self.slots[name]
        self._packed = None

    def _pack(self):
        """Stack every resident adapter's A^T and B^T per layer, ranks padded to the largest."""
        if self._packed is None:
            index = {name: i for i, name in enumerate(self.slots)}
            rank = max([slot.rank for slot in self.slots.values()] + [1])  # never an empty axis
            count = max(len(index), 1)
            feeds = {}
            for i, path in enumerate(self.targets):
                d_in, d_out = self._dims[path]
                a_all = np.zeros((count, d_in, rank), np.float32)
                b_all = np.zeros((count, rank, d_out), np.float32)
                for name, slot in self.slots.items():
                    if path in slot.lora:
                        a, b = slot.lora[path]
                        a_all[index[name]] = a.T
                        b_all[index[name]] = b.T
                feeds[f"A_{i}"], feeds[f"B_{i}"] = a_all, b_all
            self._packed = (feeds, index)
        return self._packed

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        feeds, index = self._pack()
        ids, mask = pad_rows(batch.rows, self.tokenizer.pad_token_id or 0)
        row_adapter = np.zeros(len(batch), np.int64)
        for run in batch.runs:
            row_adapter[run.rows] = index[run.slot]
        (hidden,) = self.session.run(
            ["hidden"], {**feeds, "input_ids": ids, "attention_mask": mask, "row_adapter": row_adapter}
        )
        return torch.from_numpy(hidden), torch.from_numpy(mask)

    @torch.inference_mode()
    def run(self, batch: Batch) -> list[torch.Tensor]:
        hidden, mask = self.hidden_states(batch)
        return head_logits(self.slots, batch, hidden, mask)

    def __call__(self, rows: Sequence[EncodedRow], names: Sequence[str]) -> list[torch.Tensor]:
        return predict_rows(self, rows, names)

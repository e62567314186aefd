"""Design B ("shared"): one encoder graph for every adapter, LoRA weights as graph inputs.

Each targeted Linear computes ``x W^T + b + ((x A_all^T) * row_mask) B_all^T``, the same
sum as :class:`adapters.bank.BankedLinear`. The runtime packs every resident adapter's
``A`` [r, in] and ``B·scale`` [out, r] side by side (zeros where an adapter does not target
a layer), so R = the sum of the ranks and one ``row_mask`` [B, R] serves every layer.
Adding, removing or swapping an adapter re-packs arrays: no re-export, no new session.
The graph returns the last hidden states; heads run in torch afterwards.
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
from .export import EXPORT_FORMAT, META_FILE, OPSET, ExportError, default_cache_dir, optimize, publish
from .session import open_session

SHARED_FILE = "shared.onnx"


class _InputLora(nn.Module):
    """A Linear plus a low-rank delta whose weights arrive as tensors at forward time."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.a = self.b = self.mask = None  # set by SharedEncoder.forward for each call

    def forward(self, x):
        low = (x @ self.a.transpose(0, 1)) * self.mask.unsqueeze(1)  # [B, T, R]
        return self.base(x) + low @ self.b.transpose(0, 1)


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

    def forward(self, input_ids, attention_mask, row_mask, *weights):
        for i, layer in enumerate(self.layers):
            layer.a, layer.b, layer.mask = weights[2 * i], weights[2 * i + 1], row_mask
        try:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            for layer in self.layers:
                layer.a = layer.b = layer.mask = None


def linear_targets(backbone: Backbone, names=("query", "key", "value")) -> list[str]:
    """Every Linear of the encoder whose last name is in ``names`` (PEFT's target_modules)."""
    return [
        path
        for path, module in backbone.encoder.named_modules()
        if isinstance(module, nn.Linear) and path.rsplit(".", 1)[-1] in names
    ]


def export_shared(
    backbone: Backbone, targets: list[str], cache_dir: str | Path | None = None, rebuild: bool = False
) -> tuple[Path, dict]:
    """Export (or reuse) the shared graph for ``targets``; return its path and metadata."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if any(isinstance(m, BaseTunerLayer) for m in backbone.encoder.modules()):
        raise ExportError("the backbone's encoder has PEFT layers injected: export from a freshly loaded backbone")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key_text = "\n".join([EXPORT_FORMAT, "shared", f"opset={OPSET}", backbone.fingerprint, *targets])
    folder = cache / ("shared-" + hashlib.sha256(key_text.encode()).hexdigest()[:32])
    if not rebuild and (folder / SHARED_FILE).is_file() and (folder / META_FILE).is_file():
        return folder / SHARED_FILE, json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    encoder = copy.deepcopy(backbone.encoder).float().cpu().eval()
    try:
        encoder.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        encoder.config._attn_implementation = "eager"
    module = SharedEncoder(encoder, targets).eval()
    rank = 3  # any example R: the axis is dynamic
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    row_mask = torch.ones((2, rank))
    weights, names, dynamic = (
        [],
        [],
        {
            "input_ids": {0: "batch", 1: "length"},
            "attention_mask": {0: "batch", 1: "length"},
            "row_mask": {0: "batch", 1: "rank"},
            "hidden": {0: "batch", 1: "length"},
        },
    )
    for i, layer in enumerate(module.layers):
        weights += [torch.zeros(rank, layer.base.in_features), torch.zeros(layer.base.out_features, rank)]
        names += [f"A_{i}", f"B_{i}"]
        dynamic[f"A_{i}"], dynamic[f"B_{i}"] = {0: "rank"}, {1: "rank"}
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".shared-", dir=cache))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (ids, mask, row_mask, *weights),
                str(work / "raw.onnx"),
                input_names=["input_ids", "attention_mask", "row_mask", *names],
                output_names=["hidden"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        config = backbone.encoder.config
        fused = optimize(work / "raw.onnx", work / SHARED_FILE, config.num_attention_heads, config.hidden_size)
        (work / "raw.onnx").unlink()
        meta = {
            "format": EXPORT_FORMAT,
            "design": "shared",
            "opset": OPSET,
            "targets": targets,
            "weight_inputs": names,
            "backbone": backbone.name,
            "backbone_fingerprint": backbone.fingerprint,
            "fused_ops": fused,
        }
        publish(work, folder, meta)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder / SHARED_FILE, meta


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
        self._dims = {path: (int(shapes[f"A_{i}"][1]), int(shapes[f"B_{i}"][0])) for i, path in enumerate(self.targets)}
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
        if self._packed is None:
            spans, cursor = {}, 0
            for name, slot in self.slots.items():
                spans[name] = (cursor, cursor + slot.rank)
                cursor += slot.rank
            total = max(cursor, 1)  # an empty R axis is avoided: one zero column
            feeds = {}
            for i, path in enumerate(self.targets):
                d_in, d_out = self._dims[path]
                a_all = np.zeros((total, d_in), np.float32)
                b_all = np.zeros((d_out, total), np.float32)
                for name, slot in self.slots.items():
                    if path in slot.lora:
                        lo, hi = spans[name]
                        a_all[lo:hi], b_all[:, lo:hi] = slot.lora[path]
                feeds[f"A_{i}"], feeds[f"B_{i}"] = a_all, b_all
            self._packed = (feeds, spans, total)
        return self._packed

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        feeds, spans, total = self._pack()
        ids, mask = pad_rows(batch.rows, self.tokenizer.pad_token_id or 0)
        row_mask = np.zeros((len(batch), total), np.float32)
        for run in batch.runs:
            lo, hi = spans[run.slot]
            row_mask[run.rows, lo:hi] = 1
        (hidden,) = self.session.run(
            ["hidden"], {**feeds, "input_ids": ids, "attention_mask": mask, "row_mask": row_mask}
        )
        return torch.from_numpy(hidden), torch.from_numpy(mask)

    @torch.inference_mode()
    def run(self, batch: Batch) -> list[torch.Tensor]:
        hidden, mask = self.hidden_states(batch)
        return head_logits(self.slots, batch, hidden, mask)

    def __call__(self, rows: Sequence[EncodedRow], names: Sequence[str]) -> list[torch.Tensor]:
        return predict_rows(self, rows, names)

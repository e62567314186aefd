"""What runs the forwards: torch (one base, adapters through a LoRA bank or PEFT) or
onnxruntime (exported graphs). Both implement :class:`~bedside.adapters.interface.InferenceBackend`:
``slots`` and ``run(batch)`` for the batcher and predictors, and for loading versions

- ``prepare(path, artifact)``: slow work that must not block serving (ONNX: export or
  reuse the cache, open the session); runs outside the model lock.
- ``attach(prepared, slot)``: make the version callable as ``slot``; runs under the lock.
- ``remove(slot)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from bedside.adapters.artifact import Artifact, attach
from bedside.adapters.backbones import Backbone
from bedside.adapters.batch import Batch
from bedside.adapters.interface import AdapterModel, InferenceBackend, Slot
from bedside.adapters.multi import MultiAdapterModel

from .settings import ServiceSettings


class ModelBackend:
    """A backend whose forwards and slots are its ``model``'s (an AdapterModel)."""

    model: AdapterModel
    # False for a quantised model: an example near a decision boundary may flip there, so a
    # failed check on it is settled by the reference check on a private fp32 copy (see swaps).
    served_check_is_exact = True

    @property
    def slots(self) -> Mapping[str, Slot]:
        return self.model.slots

    def run(self, batch: Batch) -> list[torch.Tensor]:
        return self.model.run(batch)


class TorchBackend(ModelBackend):
    name = "torch"
    checks_on_served_model = True  # activation checks run on the served model (see swaps)

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        self.lora_path = settings.lora_path
        self.model = self.torch = MultiAdapterModel(backbone, lora=settings.lora_path).eval()

    @property
    def label(self) -> str:
        return "torch"

    def describe(self) -> dict:
        return {"backend": "torch", "lora_path": self.lora_path}

    def prepare(self, path: Path, artifact: Artifact) -> Artifact:
        return artifact

    def attach(self, prepared: Artifact, slot: str) -> None:
        attach(self.torch, prepared, slot)
        self.torch.eval()

    def remove(self, slot: str) -> None:
        self.torch.remove_adapter(slot)


def make_backend(backbone: Backbone, settings: ServiceSettings) -> InferenceBackend:
    if settings.backend == "onnx":
        from .onnx_backend import make_onnx_backend

        return make_onnx_backend(backbone, settings)
    return TorchBackend(backbone, settings)

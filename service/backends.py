"""What runs the forwards: torch (one base, adapters through a LoRA bank or PEFT) or
onnxruntime (exported graphs). The runtime talks to both through the same three calls:

- ``prepare(path, artifact)``: slow work that must not block serving (ONNX: export or
  reuse the cache, open the session); runs outside the model lock.
- ``attach(prepared, slot)``: make the version callable as ``slot``; runs under the lock.
- ``remove(slot)``.

``model`` is what the batcher and :class:`~adapters.predict.Predictor` call:
``model(rows, slot_names) -> logits per row``.
"""
from __future__ import annotations

from pathlib import Path

from adapters.artifact import Artifact, attach
from adapters.backbones import Backbone
from adapters.multi import MultiAdapterModel

from .settings import ServiceSettings


class TorchBackend:
    name = "torch"
    checks_on_served_model = True  # activation checks run on the served model (see runtime)

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        self.lora_path = settings.lora_path
        self.model = MultiAdapterModel(backbone, lora=settings.lora_path).eval()

    @property
    def label(self) -> str:
        return "torch"

    def describe(self) -> dict:
        return {"backend": "torch", "lora_path": self.lora_path}

    def prepare(self, path: Path, artifact: Artifact) -> Artifact:
        return artifact

    def attach(self, prepared: Artifact, slot: str) -> None:
        attach(self.model, prepared, slot)
        self.model.eval()

    def remove(self, slot: str) -> None:
        self.model.remove_adapter(slot)


def make_backend(backbone: Backbone, settings: ServiceSettings):
    if settings.backend == "onnx":
        from .onnx_backend import OnnxBackend

        return OnnxBackend(backbone, settings)
    return TorchBackend(backbone, settings)


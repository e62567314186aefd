"""The service's ONNX Runtime backend (``BEDSIDE_BACKEND=onnx``).

Design ``merged`` (default, the faster one measured): every adapter version is exported
with its LoRA folded into a copy of the base and its head in the graph, cached by the
artifact's sha256; a swap exports (or reuses) and opens the new version's session beside
the old one before the pointer flips. Design ``shared``: one encoder graph whose LoRA
weights are inputs; a swap re-packs those inputs, the session stays.

The execution provider follows the service's device (``auto``: CUDA when present, else
CPU) and every session is checked to run on it (:func:`~adapters.onnx.session.open_session`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from bedside.adapters.artifact import Artifact, check_servable
from bedside.adapters.backbones import Backbone
from bedside.adapters.batch import Batch
from bedside.adapters.interface import Slot
from bedside.adapters.onnx.export import export_artifact
from bedside.adapters.onnx.session import OnnxModel, provider_for, variant_for

from .settings import ServiceSettings


class OnnxBackend:
    name = "onnx"
    checks_on_served_model = False  # int8/fp16 graphs may flip a borderline smoke example

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        self.backbone = backbone
        self.provider, options = provider_for(settings.device)
        self.variant = variant_for(settings.onnx_variant, self.provider)
        self.design = settings.onnx_design
        self.cache = settings.onnx_cache_path()
        if self.design == "shared":
            from bedside.adapters.onnx.shared import SharedOnnxModel, export_shared, linear_targets

            if self.variant != "fp32":
                raise ValueError("the shared ONNX design runs fp32 only (BEDSIDE_ONNX_VARIANT=fp32)")
            targets = [t.strip() for t in settings.onnx_shared_targets.split(",") if t.strip()]
            graph, meta = export_shared(backbone, linear_targets(backbone, targets), self.cache)
            self.model = SharedOnnxModel(backbone, graph, meta, self.provider, settings.threads, options)
        else:
            self.model = OnnxModel(backbone.tokenizer, self.provider, settings.threads, options)

    @property
    def label(self) -> str:
        """What answered, as provenance reports it: backend, design, variant, provider."""
        return f"onnx:{self.design}:{self.variant}:{self.provider}"

    @property
    def slots(self) -> Mapping[str, Slot]:
        return self.model.slots

    def run(self, batch: Batch) -> list[torch.Tensor]:
        return self.model.run(batch)

    def describe(self) -> dict:
        import onnxruntime

        return {
            "backend": "onnx",
            "design": self.design,
            "variant": self.variant,
            "provider": self.provider,
            "onnxruntime": onnxruntime.__version__,
            "cache": str(self.cache),
        }

    def prepare(self, path: Path, artifact: Artifact):
        """Export (or reuse the cached export) and open its session: slow, runs outside the lock."""
        m = artifact.manifest
        check_servable(m)  # the base is checked by the export (merged) or by add (shared)
        if self.design == "shared":
            return artifact
        exported = export_artifact(path, self.backbone, self.cache, self.variant)
        return self.model.open("", exported, m.task, m.max_length)

    def attach(self, prepared, slot: str) -> None:
        if self.design == "shared":
            self.model.add(slot, prepared)
        else:
            prepared.name = slot
            self.model.insert(prepared)

    def remove(self, slot: str) -> None:
        self.model.remove(slot)

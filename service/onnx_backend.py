"""The service's ONNX Runtime backend (``BEDSIDE_BACKEND=onnx``).

Design ``merged`` (default, the faster one measured): every adapter version is exported
with its LoRA folded into a copy of the base and its head in the graph, cached by the
artifact's sha256; a swap exports (or reuses) and opens the new version's session beside
the old one before the pointer flips. Design ``shared``: one encoder graph (fp32, or int8
base MatMuls with the LoRA path in fp32) whose LoRA weights are inputs; a swap re-stacks
those inputs, the session stays.

The execution provider follows the service's device (``auto``: CUDA when present, else
CPU) and every session is checked to run on it (:func:`~adapters.onnx.session.open_session`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bedside.adapters.artifact import Artifact, check_servable
from bedside.adapters.backbones import Backbone
from bedside.adapters.interface import Slot
from bedside.adapters.onnx.export import export_artifact
from bedside.adapters.onnx.session import CPU, OnnxModel, provider_for, variant_for
from bedside.adapters.onnx.shared import SHARED_VARIANTS, SharedOnnxModel, export_shared, linear_targets

from .backends import ModelBackend
from .settings import ServiceSettings


class OnnxBackend(ModelBackend):
    """What both designs share: the checked provider, the variant, the cache, the forward."""

    name = "onnx"
    checks_on_served_model = False  # int8/fp16 graphs may flip a borderline smoke example
    design = ""
    model: OnnxModel | SharedOnnxModel

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        self.backbone = backbone
        self.provider, self.options = provider_for(settings.device)
        self.variant = variant_for(settings.onnx_variant, self.provider)
        self.cache = settings.onnx_cache_path()

    @property
    def label(self) -> str:
        """What answered, as provenance reports it: backend, design, variant, provider."""
        return f"onnx:{self.design}:{self.variant}:{self.provider}"

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

    def prepare(self, path: Path, artifact: Artifact) -> Any:
        raise NotImplementedError

    def attach(self, prepared: Any, slot: str) -> None:
        raise NotImplementedError

    def remove(self, slot: str) -> None:
        self.model.remove(slot)


class MergedOnnxBackend(OnnxBackend):
    """One exported graph per adapter version (LoRA folded in, head included)."""

    design = "merged"

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        super().__init__(backbone, settings)
        self.merged = self.model = OnnxModel(backbone.tokenizer, self.provider, settings.threads, self.options)

    def prepare(self, path: Path, artifact: Artifact) -> Slot:
        """Export (or reuse the cached export) and open its session: slow, runs outside the lock."""
        m = artifact.manifest
        check_servable(m)  # the base is checked by the export
        exported = export_artifact(path, self.backbone, self.cache, self.variant)
        return self.merged.open("", exported, m.task, m.max_length, m.long_input, m.readout)

    def attach(self, prepared: Slot, slot: str) -> None:
        prepared.name = slot
        self.merged.insert(prepared)


class SharedOnnxBackend(OnnxBackend):
    """One encoder graph for every adapter, LoRA weights as inputs: attaching re-stacks them.

    Activation checks run on this served graph, as with torch, so an uploaded version is
    staged and its activation is a pointer flip."""

    design = "shared"
    checks_on_served_model = True

    def __init__(self, backbone: Backbone, settings: ServiceSettings) -> None:
        super().__init__(backbone, settings)
        if settings.onnx_variant == "auto":  # no fp16 shared graph: int8 on CPU, fp32 elsewhere
            self.variant = "int8" if self.provider == CPU else "fp32"
        if self.variant not in SHARED_VARIANTS:
            raise ValueError(
                f"the shared ONNX design runs {' or '.join(SHARED_VARIANTS)} (BEDSIDE_ONNX_VARIANT), not {self.variant}"
            )
        self.served_check_is_exact = self.variant == "fp32"
        targets = [t.strip() for t in settings.onnx_shared_targets.split(",") if t.strip()]
        graph, meta = export_shared(backbone, linear_targets(backbone, targets), self.cache, variant=self.variant)
        self.shared = self.model = SharedOnnxModel(backbone, graph, meta, self.provider, settings.threads, self.options)

    def prepare(self, path: Path, artifact: Artifact) -> Artifact:
        check_servable(artifact.manifest)  # the base is checked by add
        return artifact

    def attach(self, prepared: Artifact, slot: str) -> None:
        self.shared.add(slot, prepared)


def make_onnx_backend(backbone: Backbone, settings: ServiceSettings) -> OnnxBackend:
    designs = {"merged": MergedOnnxBackend, "shared": SharedOnnxBackend}
    return designs[settings.onnx_design](backbone, settings)

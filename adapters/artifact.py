"""The adapter artifact: a directory of JSON and safetensors, never pickle.

```
manifest.json               what the adapter is (validated by :class:`Manifest`)
adapter_config.json         PEFT's own config (LoRA/IA3/prompt/prefix)
adapter_model.safetensors   PEFT weights
encoder.safetensors         full fine-tuning only: the whole encoder
head.safetensors            the task head
examples.json               smoke inputs with the predictions they gave at save time
README.md                   model card
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import torch
from peft import PeftConfig, get_peft_model_state_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .heads import build_head, head_num_labels
from .model_card import model_card
from .readout import Readout
from .tasks import TaskKind, TaskSpec
from .windows import LongInput

FORMAT: Literal["bedside-adapter/1"] = "bedside-adapter/1"
MANIFEST = "manifest.json"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
ENCODER_WEIGHTS = "encoder.safetensors"
HEAD_WEIGHTS = "head.safetensors"
EXAMPLES = "examples.json"
MODEL_CARD = "README.md"
ARTIFACT_FILES = (MANIFEST, PEFT_CONFIG, PEFT_WEIGHTS, ENCODER_WEIGHTS, HEAD_WEIGHTS, EXAMPLES, MODEL_CARD)


class ArtifactError(ValueError):
    """An artifact is malformed, inconsistent, or does not fit the loaded base."""


class Method(str, Enum):
    lora = "lora"
    ia3 = "ia3"
    full = "full"
    prompt = "prompt"
    prefix = "prefix"


class BaseRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    fingerprint: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    hidden_size: int = Field(gt=0)


class HeadRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: TaskKind
    num_labels: int = Field(ge=2)
    dropout: float = Field(default=0.1, ge=0, lt=1)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["bedside-adapter/1"] = FORMAT
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: TaskSpec
    base: BaseRef
    method: Method
    head: HeadRef
    max_length: int = Field(ge=8, le=8192)
    long_input: LongInput | None = Field(None, description="sequence tasks: how a note longer than a row is read")
    servable: bool = True
    not_servable_reason: str | None = None
    readout: Readout = Field(default_factory=Readout, description="temperature and operating point (validation)")
    calibration: dict[str, Any] | None = Field(None, description="what the fit measured: NLL, ECE, Brier before/after")
    metrics: dict[str, float | None] = Field(default_factory=dict)
    metrics_ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="95 % bootstrap intervals of the test metrics"
    )
    trainable_params: int | None = None
    total_params: int | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    data_hash: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="split sizes and label or entity counts")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    created_by: str = "bedside"

    def check_consistent(self) -> None:
        if self.head.kind != self.task.kind:
            raise ArtifactError(f"head kind {self.head.kind.value!r} does not match task kind {self.task.kind.value!r}")
        if self.head.num_labels != self.task.num_labels:
            raise ArtifactError(
                f"manifest head has {self.head.num_labels} outputs but task {self.task.name!r} "
                f"lists {self.task.num_labels} labels"
            )
        try:
            self.readout.check(self.task)
        except ValueError as exc:
            raise ArtifactError(str(exc)) from None
        if not self.servable and not self.not_servable_reason:
            raise ArtifactError("a non-servable artifact must say why (not_servable_reason)")


@dataclass
class Artifact:
    """A loaded, validated artifact (tensors on CPU)."""

    path: Path | None
    manifest: Manifest
    head_state: dict[str, torch.Tensor]
    peft_config: PeftConfig | None = None
    peft_state: dict[str, torch.Tensor] | None = None
    encoder_state: dict[str, torch.Tensor] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def build_head(self):
        head = build_head(
            self.manifest.head.kind,
            self.manifest.base.hidden_size,
            self.manifest.head.num_labels,
            self.manifest.head.dropout,
        )
        try:
            head.load_state_dict(self.head_state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"head weights do not fit a {self.manifest.head.kind.value} head: {exc}") from None
        return head


# -- writing --------------------------------------------------------------------
def peft_config_dict(config: PeftConfig) -> dict[str, Any]:
    """PEFT's config as plain JSON (sets become sorted lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config.to_dict())


def save_artifact(
    out_dir: str | Path,
    manifest: Manifest,
    head_state: dict[str, torch.Tensor],
    peft_config: PeftConfig | None = None,
    peft_state: dict[str, torch.Tensor] | None = None,
    encoder_state: dict[str, torch.Tensor] | None = None,
    examples: list[dict[str, Any]] | None = None,
) -> Path:
    manifest.check_consistent()
    if head_num_labels(head_state) != manifest.task.num_labels:
        raise ArtifactError("head output size does not match the task's labels")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / MANIFEST, json.loads(manifest.model_dump_json()))
    save_file(_contiguous(head_state), out / HEAD_WEIGHTS)
    if peft_config is not None:
        config = peft_config_dict(peft_config)
        # Name the base by its bedside spec, not the local folder PEFT saw it loaded from.
        config["base_model_name_or_path"] = manifest.base.name
        _write_json(out / PEFT_CONFIG, config)
        save_file(_contiguous(peft_state or {}), out / PEFT_WEIGHTS)
    if encoder_state is not None:
        save_file(_contiguous(encoder_state), out / ENCODER_WEIGHTS)
    _write_json(out / EXAMPLES, examples or [])
    (out / MODEL_CARD).write_text(model_card(manifest), encoding="utf-8")
    return out


def save_from_model(
    out_dir: str | Path,
    model,
    slot_name: str,
    manifest: Manifest,
    examples: list[dict[str, Any]] | None = None,
    with_encoder: bool = False,
) -> Path:
    """Save one slot of a :class:`~adapters.multi.MultiAdapterModel` as an artifact
    (``with_encoder``: also the whole encoder, for full fine-tuning)."""
    slot = model.slots[slot_name]
    peft_config = peft_state = None
    if slot.peft_name is not None:
        peft_config = model.peft.peft_config[slot.peft_name]
        peft_state = get_peft_model_state_dict(model.peft, adapter_name=slot.peft_name)
    encoder_state = model.backbone.encoder.state_dict() if with_encoder else None
    return save_artifact(out_dir, manifest, slot.head.state_dict(), peft_config, peft_state, encoder_state, examples)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


# -- reading --------------------------------------------------------------------
def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    try:
        manifest = Manifest.model_validate_json(file.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing manifest.json") from None
    except ValidationError as exc:
        raise ArtifactError(f"{file}: invalid manifest: {_first_errors(exc)}") from None
    manifest.check_consistent()
    return manifest


def _first_errors(exc: ValidationError, n: int = 3) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:n])


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """Read safetensors and refuse non-finite weights."""
    try:
        state = load_file(file)
    except FileNotFoundError:
        raise ArtifactError(f"missing {file.name}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{file.name} is not a valid safetensors file: {exc}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ArtifactError(f"{file.name}: tensor {name!r} has NaN or Inf values")
    return state


def read_peft_config(file: Path) -> PeftConfig:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return PeftConfig.from_peft_type(**data)
    except FileNotFoundError:
        raise ArtifactError(f"missing {file.name}") from None
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{file.name} is not a valid PEFT config: {exc}") from None


def load_artifact(path: str | Path) -> Artifact:
    """Read and validate an artifact directory (no base model needed)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path} is not an artifact directory")
    manifest = read_manifest(path)
    head_state = read_tensors(path / HEAD_WEIGHTS)
    try:
        outputs = head_num_labels(head_state)
    except ValueError as exc:
        raise ArtifactError(f"{HEAD_WEIGHTS}: {exc}") from None
    if outputs != manifest.task.num_labels:
        raise ArtifactError(
            f"label count mismatch: the manifest lists {manifest.task.num_labels} labels for task "
            f"{manifest.task.name!r} but the head has {outputs} outputs"
        )
    artifact = Artifact(path=path, manifest=manifest, head_state=head_state)
    if manifest.method is Method.full:
        artifact.encoder_state = read_tensors(path / ENCODER_WEIGHTS)
    else:
        artifact.peft_config = read_peft_config(path / PEFT_CONFIG)
        artifact.peft_state = read_tensors(path / PEFT_WEIGHTS)
    if (path / EXAMPLES).is_file():
        try:
            artifact.examples = json.loads((path / EXAMPLES).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{EXAMPLES} is not valid JSON: {exc}") from None
    return artifact


def check_base(manifest: Manifest, fingerprint: str, base_name: str = "") -> None:
    if manifest.base.fingerprint != fingerprint:
        raise ArtifactError(
            f"adapter {manifest.name!r} was trained on base {manifest.base.name!r} "
            f"({manifest.base.fingerprint[:19]}…), but the loaded base {base_name!r} is "
            f"{fingerprint[:19]}…: refusing to attach it to a different base model"
        )


def check_servable(manifest: Manifest) -> None:
    if not manifest.servable:
        raise ArtifactError(
            f"adapter {manifest.name!r} is not servable on the shared base: {manifest.not_servable_reason}"
        )


def attach(model, artifact: Artifact, name: str | None = None):
    """Add a loaded artifact to a :class:`~adapters.multi.MultiAdapterModel`; return its slot."""
    m = artifact.manifest
    check_base(m, model.backbone.fingerprint, model.backbone.name)
    check_servable(m)
    if m.base.hidden_size != model.backbone.hidden_size:
        raise ArtifactError("head hidden size does not match the base")
    try:
        return _add(model, artifact, name)
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"adapter {m.name!r} does not fit the loaded base: {exc}") from None


def build_model(artifact: Artifact, backbone, name: str | None = None):
    """A private model holding only this artifact, whatever its method (evaluation).

    Non-servable methods are fine here: full fine-tuning replaces the encoder's
    weights, which is why it can never share the service's base.
    """
    from .multi import MultiAdapterModel

    m = artifact.manifest
    check_base(m, backbone.fingerprint, backbone.name)
    if artifact.encoder_state is not None:
        try:
            backbone.encoder.load_state_dict(artifact.encoder_state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"encoder weights do not fit the base: {exc}") from None
    model = MultiAdapterModel(backbone)
    _add(model, artifact, name)
    return model.eval()


def _add(model, artifact: Artifact, name: str | None):
    m = artifact.manifest
    return model.add_adapter(
        name or m.name,
        m.task,
        artifact.build_head(),
        peft_config=artifact.peft_config,
        peft_state=artifact.peft_state,
        max_length=m.max_length,
        long_input=m.long_input,
        readout=m.readout,
    )

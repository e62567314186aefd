"""PEFT tensors against the served base: names, kinds and shapes, without loading.

An adapter trained on another base (or a forged fingerprint) shows up here as a
tensor for a module the base lacks, or a LoRA A/B whose in/out sizes differ from
the targeted Linear layer. Works from safetensors headers only (no torch load).
"""

from __future__ import annotations

import re

from .errors import BaseMismatch, ForbiddenConfig, InvalidArtifact
from .peft_schema import IA3Schema, LoraSchema, PeftSchema
from .tensors import TensorInfo, key_ref

PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>[A-Za-z0-9_.]+)\.lora_(?P<part>[AB])\.weight$")
_IA3_KEY = re.compile(r"^(?P<module>[A-Za-z0-9_.]+)\.ia3_l$")
FLOATS = {"F16", "BF16", "F32", "F64"}


def _matches(module: str, names: list[str] | None) -> bool:
    return any(module == n or module.endswith("." + n) for n in names or [])


def _module_of(key: str, pattern: re.Pattern) -> re.Match:
    if not key.startswith(PREFIX) or not (match := pattern.match(key[len(PREFIX) :])):
        raise InvalidArtifact(f"adapter_model.safetensors: unexpected tensor {key_ref(key)} for this PEFT method")
    return match


def base_linear_shape(base_encoder, module: str) -> tuple[int, int]:
    """(in_features, out_features) of the base's Linear ``module`` (PEFT wrappers unwrapped)."""
    try:
        layer = base_encoder.get_submodule(module)
    except AttributeError:
        raise BaseMismatch(f"the served base has no module {module!r}: adapter trained on another base?") from None
    # The served encoder may already carry LoRA wrappers: PEFT's `.base_layer`, a bank's `.base`.
    layer = getattr(layer, "base_layer", None) or getattr(layer, "base", None) or layer
    sizes = (getattr(layer, "in_features", None), getattr(layer, "out_features", None))
    if not all(isinstance(size, int) for size in sizes):
        raise ForbiddenConfig(f"module {module!r} is not a Linear layer; only Linear layers take adapters")
    return layer.in_features, layer.out_features


def check_adapter_tensors(
    config: PeftSchema, tensors: dict[str, TensorInfo], base_encoder=None, max_rank: int = 64
) -> None:
    """Refuse tensors that do not belong to ``config`` or do not fit ``base_encoder``."""
    if not tensors:
        raise InvalidArtifact("adapter_model.safetensors holds no tensors")
    for t in tensors.values():
        if t.dtype not in FLOATS:
            raise InvalidArtifact(f"adapter_model.safetensors: tensor {t.name!r} is not floating point")
    if isinstance(config, LoraSchema):
        _check_lora(config, tensors, base_encoder, max_rank)
    elif isinstance(config, IA3Schema):
        _check_ia3(config, tensors, base_encoder)
    if base_encoder is not None:
        _check_layers(config, base_encoder)


def _targeted(config: PeftSchema, module: str) -> None:
    if not _matches(module, config.target_modules) or _matches(module, config.exclude_modules):
        raise InvalidArtifact(f"adapter_model.safetensors: module {module!r} is not one of the config's target_modules")


def _check_lora(config: LoraSchema, tensors: dict[str, TensorInfo], base_encoder, max_rank: int) -> None:
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, t in tensors.items():
        match = _module_of(key, _LORA_KEY)
        parts.setdefault(match["module"], {})[match["part"]] = t.shape
    for module, ab in parts.items():
        _targeted(config, module)
        if set(ab) != {"A", "B"} or len(ab["A"]) != 2 or len(ab["B"]) != 2:
            raise InvalidArtifact(f"LoRA module {module!r} needs a 2-d lora_A and lora_B")
        (rank, fan_in), (fan_out, rank_b) = ab["A"], ab["B"]
        if rank != rank_b:
            raise InvalidArtifact(f"LoRA module {module!r}: lora_A rank {rank} != lora_B rank {rank_b}")
        if not 1 <= rank <= max_rank:
            raise ForbiddenConfig(f"LoRA module {module!r} has rank {rank}; the cap is {max_rank}")
        if rank != (configured := _configured_rank(config, module)):
            raise InvalidArtifact(f"LoRA module {module!r} has rank {rank}, the config says {configured}")
        if base_encoder is not None:
            expected = base_linear_shape(base_encoder, module)
            if (fan_in, fan_out) != expected:
                raise BaseMismatch(
                    f"LoRA module {module!r} maps {fan_in}->{fan_out} but the served base's layer is "
                    f"{expected[0]}->{expected[1]}: adapter trained on another base"
                )


def _configured_rank(config: LoraSchema, module: str) -> int:
    # rank_pattern keys are plain module-name suffixes here (the schema allows no regex).
    for key, rank in config.rank_pattern.items():
        if _matches(module, [key]):
            return rank
    return config.r


def _check_ia3(config: IA3Schema, tensors: dict[str, TensorInfo], base_encoder) -> None:
    for key, t in tensors.items():
        module = _module_of(key, _IA3_KEY)["module"]
        _targeted(config, module)
        feedforward = _matches(module, config.feedforward_modules)
        if len(t.shape) != 2 or t.shape[0 if feedforward else 1] != 1:
            raise InvalidArtifact(f"IA3 vector for {module!r} has shape {list(t.shape)}")
        if base_encoder is not None:
            fan_in, fan_out = base_linear_shape(base_encoder, module)
            size = t.shape[1] if feedforward else t.shape[0]
            if size != (fan_in if feedforward else fan_out):
                raise BaseMismatch(f"IA3 vector for {module!r} does not fit the served base's layer")


def _check_layers(config: PeftSchema, base_encoder) -> None:
    value = getattr(config, "layers_to_transform", None)
    layers = [value] if isinstance(value, int) else value or []
    count = getattr(getattr(base_encoder, "config", None), "num_hidden_layers", None)
    if count is not None and any(i >= count for i in layers):
        raise ForbiddenConfig(f"layers_to_transform names layers the {count}-layer base does not have")

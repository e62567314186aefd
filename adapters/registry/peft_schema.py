"""``adapter_config.json`` against an allow-list schema (LoRA and IA3 only).

Every key PEFT 0.21 writes is listed; anything else is refused, and so is every
value that would make loading import code (``auto_mapping``, ``megatron_core``),
fetch something (``revision``, a foreign ``base_model_name_or_path``), change the
base outside the adapter (``modules_to_save``, biases) or take a path the
mixed-batch server does not run (DoRA, QA-LoRA, LoftQ, ...).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import BaseMismatch, ForbiddenConfig

MODULE_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
ModuleName = Annotated[str, Field(pattern=MODULE_NAME.pattern, max_length=200)]
ModuleList = Annotated[list[ModuleName], Field(max_length=64)]
Unset = Annotated[None, Field(default=None)]  # keys that must be null: exotic features we do not serve


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: Literal["FEATURE_EXTRACTION", "SEQ_CLS", "TOKEN_CLS"] | None = None
    peft_version: Annotated[str, Field(max_length=64)] | None = None
    base_model_name_or_path: Annotated[str, Field(max_length=256)] | None = None
    revision: None = None
    auto_mapping: None = None
    inference_mode: bool = False
    target_modules: Annotated[ModuleList, Field(min_length=1)]
    exclude_modules: ModuleList | None = None
    fan_in_fan_out: Literal[False] = False
    modules_to_save: Annotated[list[Any], Field(max_length=0)] | None = None

    @field_validator("target_modules", mode="before")
    @classmethod
    def _explicit_targets(cls, value: Any) -> Any:
        if isinstance(value, str):  # PEFT reads a string as a regex over every module name
            raise ValueError("must be a list of module names, not a pattern")
        return value


class LoraSchema(_Common):
    peft_type: Literal["LORA"]
    r: int = Field(ge=1)
    lora_alpha: float = Field(default=8, gt=0, le=1e4)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    use_rslora: bool = False
    init_lora_weights: bool | Literal["gaussian"] = True
    rank_pattern: dict[ModuleName, int] = Field(default_factory=dict, max_length=256)
    alpha_pattern: dict[ModuleName, Annotated[float, Field(gt=0, le=1e4)]] = Field(default_factory=dict, max_length=256)
    layers_to_transform: int | list[int] | None = None
    layers_pattern: ModuleName | list[ModuleName] | None = None
    bias: Literal["none"] = "none"
    lora_bias: Literal[False] = False
    use_dora: Literal[False] = False
    use_qalora: Literal[False] = False
    use_bdlora: Literal[False] | None = None
    qalora_group_size: int = 16
    ensure_weight_tying: bool = False
    loftq_config: Annotated[dict, Field(max_length=0)] | None = None
    megatron_core: Literal["megatron.core"] | None = "megatron.core"  # a module name PEFT imports
    target_parameters: Annotated[list[Any], Field(max_length=0)] | None = None
    alora_invocation_tokens: Unset
    arrow_config: Unset
    corda_config: Unset
    eva_config: Unset
    kasa_config: Unset
    layer_replication: Unset
    lora_ga_config: Unset
    megatron_config: Unset
    monteclora_config: Unset
    trainable_token_indices: Unset
    velora_config: Unset

    @field_validator("r")
    @classmethod
    def _rank_cap(cls, r: int, info: ValidationInfo) -> int:
        cap = (info.context or {}).get("max_rank", 64)
        if r > cap:
            raise ValueError(f"rank {r} is above the cap of {cap}")
        return r

    @field_validator("rank_pattern")
    @classmethod
    def _pattern_rank_cap(cls, pattern: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        cap = (info.context or {}).get("max_rank", 64)
        if any(not 1 <= r <= cap for r in pattern.values()):
            raise ValueError(f"every rank must be in 1..{cap}")
        return pattern

    @field_validator("layers_to_transform")
    @classmethod
    def _layers(cls, value: int | list[int] | None) -> int | list[int] | None:
        layers = [value] if isinstance(value, int) else value or []
        if len(layers) > 1024 or any(not 0 <= i < 1024 for i in layers) or len(set(layers)) != len(layers):
            raise ValueError("must be distinct layer indices in 0..1023")
        return value


class IA3Schema(_Common):
    peft_type: Literal["IA3"]
    feedforward_modules: ModuleList | None = None
    init_ia3_weights: bool = True

    @field_validator("feedforward_modules")
    @classmethod
    def _subset(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value and not set(value) <= set(info.data.get("target_modules") or []):
            raise ValueError("feedforward_modules must be a subset of target_modules")
        return value


SCHEMAS: dict[str, type[PeftSchema]] = {"LORA": LoraSchema, "IA3": IA3Schema}
PeftSchema = LoraSchema | IA3Schema


def parse_peft_config(raw: bytes, max_rank: int = 64, served_names: tuple[str, ...] = ()) -> PeftSchema:
    """Validate ``adapter_config.json`` bytes; refuse anything outside the allow-list."""
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ForbiddenConfig(f"adapter_config.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ForbiddenConfig("adapter_config.json must be a JSON object")
    peft_type = data.get("peft_type")
    schema = SCHEMAS.get(peft_type) if isinstance(peft_type, str) else None
    if schema is None:
        raise ForbiddenConfig(f"peft_type {peft_type!r} is not served; only LORA and IA3 adapters are")
    try:
        config = schema.model_validate(data, context={"max_rank": max_rank})
    except ValidationError as exc:
        raise ForbiddenConfig(f"adapter_config.json: {_describe(exc)}") from None
    check_base_name(config.base_model_name_or_path, served_names)
    return config


def check_base_name(name: str | None, served_names: tuple[str, ...]) -> None:
    """A recorded base must be the served one. Compared as text: nothing is looked up or fetched."""
    if name in (None, "") or name in served_names:
        return
    raise BaseMismatch(
        f"adapter_config.json names base {name!r}, which is not the served base "
        f"({', '.join(repr(n) for n in served_names) or 'unknown'})"
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys")
    return dict(pairs)


def _describe(exc: ValidationError, n: int = 4) -> str:
    out = []
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # unknown keys first
    for err in errors[:n]:
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            out.append(f"unknown key {where!r}")
        elif err["type"] == "none_required":
            out.append(f"{where} must be null (not supported by the server)")
        else:
            out.append(f"{where}: {err['msg']}")
    return "; ".join(out)

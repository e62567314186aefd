"""Every service setting in one typed object: environment (BEDSIDE_*) or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bedside.adapters.settings import PathSettings

SERVICE_VERSION = "0.1.0"


class ServiceSettings(PathSettings):
    """``bedside serve`` takes every field as a flag (``--max-batch-rows 64``); the server
    process reads them from ``BEDSIDE_*`` (``BEDSIDE_MAX_BATCH_ROWS=64``)."""

    model_config = SettingsConfigDict(env_prefix="BEDSIDE_", extra="ignore")

    port: int = Field(3000, ge=1, le=65535, description="HTTP port")
    backbone: str = Field("embedded", description="shared base: embedded, a folder or a hub id")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    backend: Literal["torch", "onnx"] = Field("torch", description="inference backend: torch or onnx (ONNX Runtime)")
    onnx_variant: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto", description="ONNX graphs: auto (int8 on CPU, fp16 on CUDA), fp32, int8 or fp16"
    )
    onnx_design: Literal["merged", "shared"] = Field(
        "merged",
        description="ONNX: merged (one graph per adapter, LoRA folded in) or "
        "shared (one encoder graph, LoRA weights as inputs)",
    )
    onnx_shared_targets: str = Field(
        "query,key,value", description="shared design: the Linear layers whose LoRA weights are graph inputs"
    )
    lora_path: Literal["bank", "peft"] = Field(
        "bank",
        description="how LoRA runs: bank (one pass per layer for mixed batches) or peft (PEFT's per-adapter loop)",
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: all cores)")

    max_items: int = Field(64, ge=1, description="texts/items per request at most")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="request body limit (413 above)")
    max_batch_rows: int = Field(32, ge=1, description="rows per encoder forward")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits to fill")
    max_padding: float = Field(
        0.05,
        ge=0,
        le=1,
        description="a batch of 8+ rows is split where more of its "
        "tokens would be padding (1: never split; on GPUs, where big batches pay, 1)",
    )
    max_queue_rows: int = Field(512, ge=1, description="queued rows before 429")
    request_timeout_s: float = Field(30.0, gt=0, description="504 after this")
    truncate: bool = Field(False, description="truncate over-long inputs instead of 422")
    max_length: int | None = Field(None, ge=8, description="token limit override (else the adapter's)")

    poll_interval_s: float = Field(2.0, gt=0, description="how often the store is checked for activations")
    resident_cap: int = Field(4, ge=0, description="inactive versions kept loaded (LRU)")

    predict_tokens: str = Field(
        "",
        description="comma-separated bearer tokens for /predict (empty: open); as a flag it shows in the "
        "process list: prefer the environment or a tokens file",
    )
    admin_tokens: str = Field(
        "",
        description="comma-separated bearer tokens for /admin (empty: admin off); prefer the environment or "
        "a tokens file",
    )
    predict_tokens_file: Path | None = Field(
        None, description="file of /predict tokens (comma- or newline-separated), added to predict_tokens"
    )
    admin_tokens_file: Path | None = Field(
        None, description="file of /admin tokens (comma- or newline-separated), added to admin_tokens"
    )
    max_upload_bytes: int = Field(512 << 20, ge=1024, description="admin upload limit")

    def tokens(self, role: str) -> frozenset[str]:
        raw = getattr(self, f"{role}_tokens")
        file = getattr(self, f"{role}_tokens_file")
        if file is not None:
            raw += "," + Path(file).read_text(encoding="utf-8").replace("\n", ",")
        return frozenset(t.strip() for t in raw.split(",") if t.strip())

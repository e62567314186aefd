"""Every service setting in one typed object: environment (BEDSIDE_*) or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bedside.adapters.limits import InputLimits
from bedside.adapters.settings import PathSettings

SERVICE_VERSION = "0.1.0"


class ServiceSettings(PathSettings):
    """``bedside serve`` takes every field as a flag (``--max-batch-rows 64``); the server
    process reads them from ``BEDSIDE_*`` (``BEDSIDE_MAX_BATCH_ROWS=64``)."""

    model_config = SettingsConfigDict(env_prefix="BEDSIDE_", extra="ignore")

    port: int = Field(3000, ge=1, le=65535, description="HTTP port")
    host: str = Field(
        "127.0.0.1",
        description="address to listen on (0.0.0.0: every interface, as the container and Kubernetes manifests set it)",
    )
    allow_unauthenticated: bool = Field(
        False, description="serve /predict without tokens on a non-loopback address (refused otherwise)"
    )
    trusted_proxies: str = Field(
        "", description="comma-separated proxy addresses whose X-Forwarded-For is believed (empty: none)"
    )
    header_timeout_s: float = Field(10.0, gt=0, description="a request's headers must arrive within this")
    max_header_bytes: int = Field(16384, ge=1024, description="request line and headers at most (400 above)")
    body_timeout_s: float = Field(10.0, gt=0, description="the longest wait for the next piece of a body (408)")
    keepalive_timeout_s: int = Field(5, ge=1, description="an idle keep-alive connection closes after this")
    ready_tasks: str = Field(
        "all", description="what GET /ready needs: all (every known task), any, or a comma-separated task list"
    )
    backbone: str = Field("embedded", description="shared base: embedded, a folder or a hub id")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    backend: Literal["torch", "onnx"] = Field("torch", description="inference backend: torch or onnx (ONNX Runtime)")
    onnx_variant: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto",
        description="ONNX graphs: auto (int8 on CPU; on CUDA fp16, or fp32 for the shared design), fp32, int8 or fp16",
    )
    onnx_design: Literal["merged", "shared"] = Field(
        "merged",
        description="ONNX: merged (one graph per adapter, LoRA folded in) or "
        "shared (one encoder graph for every task, LoRA weights as inputs; int8 or fp32)",
    )
    onnx_shared_targets: str = Field(
        "query,key,value,dense",
        description="shared design: the Linear layers whose LoRA weights are graph inputs (default: every BERT Linear)",
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
    max_queue_rows: int = Field(4096, ge=1, description="queued rows (windows of all requests) before 429")
    max_queue_wait_s: float = Field(
        5.0, gt=0, description="429 when the queue ahead of a request would take longer than this (measured rate)"
    )
    request_timeout_s: float = Field(30.0, gt=0, description="504 after this")
    max_length: int | None = Field(None, ge=8, description="row length override (else the adapter's)")
    max_text_chars: int = Field(262144, ge=1, description="characters per text (413 above, before tokenising)")
    max_request_chars: int = Field(524288, ge=1, description="characters per request, all texts together")
    max_request_tokens: int = Field(32768, ge=1, description="tokens per request, all texts together (413 above)")
    max_request_words: int = Field(65536, ge=1, description="words per request (413 above)")
    max_unknown_share: float = Field(
        0.5, gt=0, le=1, description="a text with more of its tokens unknown to the model is refused (422)"
    )
    window_stride: float = Field(
        0.5, gt=0, le=1, description="token tasks: consecutive windows of a note start this share of a row apart"
    )
    max_pairs: int = Field(2000, ge=1, description="/extract: relation candidates per note (413 above)")
    pair_distance_chars: int = Field(
        0, ge=0, description="/extract: entity pairs across sentences this close are candidates too (0: same sentence)"
    )
    pair_max_words: int = Field(
        48,
        ge=0,
        description="/extract: candidate pairs at most this many words apart (0: any that one relation row holds); "
        "an unpunctuated transcript turn is one sentence",
    )

    shadow_timeout_s: float = Field(
        10.0, gt=0, description="a shadow version's answer is compared only if it comes within this (else: timeout)"
    )
    shadow_queue_rows: int = Field(
        256, ge=0, description="shadow rows join only a queue this short (rows); beyond it they are dropped first"
    )

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

    def input_limits(self) -> InputLimits:
        """What one request may ask of the model, as the adapters' readers check it."""
        return InputLimits(
            max_tokens=self.max_request_tokens,
            max_words=self.max_request_words,
            max_unknown_share=self.max_unknown_share,
            stride=self.window_stride,
            max_pairs=self.max_pairs,
            pair_distance_chars=self.pair_distance_chars,
            pair_max_words=self.pair_max_words,
        )

    def tokens(self, role: str) -> frozenset[str]:
        raw = getattr(self, f"{role}_tokens")
        file = getattr(self, f"{role}_tokens_file")
        if file is not None:
            raw += "," + Path(file).read_text(encoding="utf-8").replace("\n", ",")
        return frozenset(t.strip() for t in raw.split(",") if t.strip())

"""Training hyper-parameters. Defaults are the paper's recipe unless noted."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.artifact import Method

PAPER_TARGETS = ("query", "key", "value")


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = Method.lora
    rank: int = Field(8, ge=1, le=512, description="LoRA rank r")
    alpha: float = Field(8, gt=0, description="LoRA scaling alpha")
    dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    target_modules: tuple[str, ...] = Field(PAPER_TARGETS, description="module names LoRA/IA3 wrap")
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="prompt/prefix tuning length")
    lr: float | None = Field(None, gt=0, description="learning rate; default 3e-4 (PEFT) or 3e-5 (full)")
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8, le=8192)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    seed: int = 0
    few_shot: int | None = Field(None, ge=1, description="examples per class")
    time_budget: float | None = Field(None, gt=0, description="stop training after this many seconds")
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    head_dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _fill_lr(self) -> "TrainSettings":
        if self.lr is None:
            self.lr = 3e-5 if self.method is Method.full else 3e-4
        return self

    def learning_rate(self) -> float:
        return float(self.lr)

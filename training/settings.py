"""Training hyper-parameters.

A *recipe* fills what the caller leaves unset: ``bedside``, the default (measured on bc5cdr
above full fine-tuning on NER: r=16, alpha 32 on every Linear of the encoder, lr 1e-3, 3 epochs,
no dropout on the LoRA path or the attention probabilities, which lets LoRA run fused and
attention use torch's fused kernel, batches grouped by length; docs/results.md) or ``paper``
(the study's LoRA: r=8, alpha 8 on query/key/value, lr 3e-4, 5 epochs, LoRA dropout 0.1, the
base's own attention dropout, plainly shuffled batches; what the study configs ask for).
Explicit values always win.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from bedside.adapters.artifact import Method
from bedside.adapters.windows import ChunkPool, ChunkStride, LongInput, Strategy

PAPER_TARGETS = ("query", "key", "value")
ALL_LINEAR = ("query", "key", "value", "dense")  # "dense": attention output, FFN in and out (BERT names)
BY_RECIPE: JsonDict = {"cli_default": "the recipe's"}  # shown in --help: the recipe fills these when unset
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {
        "rank": 8,
        "alpha": 8,
        "target_modules": PAPER_TARGETS,
        "peft_lr": 3e-4,
        "epochs": 5,
        "dropout": 0.1,
        "attention_dropout": None,
        "group_by_length": False,  # the study's trainer shuffled plainly
    },
    "bedside": {
        "rank": 16,
        "alpha": 32,
        "target_modules": ALL_LINEAR,
        "peft_lr": 1e-3,
        "epochs": 3,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "group_by_length": True,
    },
}


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: Literal["paper", "bedside"] = Field(
        "bedside",
        description="fills rank, alpha, target modules, learning rate and epochs where they are not "
        "given: bedside (the best measured: r=16, alpha 32, every Linear, lr 1e-3, 3 epochs) or paper "
        "(the study's: r=8, alpha 8, query/key/value, lr 3e-4, 5 epochs)",
    )
    method: Method = Field(
        Method.lora, description="what is trained: lora, ia3, full fine-tuning, prompt or prefix tuning"
    )
    rank: int = Field(8, ge=1, le=512, description="LoRA rank r", json_schema_extra=BY_RECIPE)
    alpha: float = Field(8, gt=0, description="LoRA scaling alpha", json_schema_extra=BY_RECIPE)
    dropout: float = Field(
        0.1, ge=0, lt=1, description="LoRA dropout (0: LoRA layers run fused in training)", json_schema_extra=BY_RECIPE
    )
    attention_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="the base's dropout on attention probabilities while training (none: the base's own; 0 lets "
        "torch use its fused attention kernel: less memory and time)",
        json_schema_extra=BY_RECIPE,
    )
    target_modules: tuple[str, ...] = Field(
        PAPER_TARGETS, description="module names LoRA/IA3 wrap", json_schema_extra=BY_RECIPE
    )
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="prompt/prefix tuning length")
    lr: float | None = Field(
        None, gt=0, description="learning rate", json_schema_extra={"cli_default": "the recipe's (PEFT) or 3e-5 (full)"}
    )
    epochs: int = Field(5, ge=1, description="passes over the training split", json_schema_extra=BY_RECIPE)
    batch_size: int = Field(32, ge=1, description="training examples per optimiser step")
    group_by_length: bool = Field(
        True,
        description="batch examples of similar length together (shuffled windows of 50 batches sorted by length, "
        "the batches shuffled again): less padding, faster steps",
        json_schema_extra=BY_RECIPE,
    )
    eval_batch_size: int = Field(64, ge=1, description="examples per forward when scoring")
    max_length: int = Field(128, ge=8, le=8192, description="token limit per input (the adapter serves with it)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (none on biases and LayerNorm)")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of steps with a linear learning-rate warm-up")
    seed: int = Field(0, description="seed for initialisation, shuffling and few-shot sampling")
    few_shot: int | None = Field(None, ge=1, description="examples per class")
    time_budget: float | None = Field(None, gt=0, description="stop training after this many seconds")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision (bf16 and fp16 need a GPU)"
    )
    head_dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the task head")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping (transformers' Trainer default)")
    long_input: Strategy = "truncate"
    chunk_pool: ChunkPool = "mean"
    chunk_stride: ChunkStride = 0.5
    patience: int | None = Field(
        2, ge=1, description="stop after this many epochs without a better validation score (none: never)"
    )
    class_weights: bool = Field(False, description="sequence tasks: weigh the loss by inverse label frequency")
    calibrate: bool = Field(True, description="calibrate probabilities on validation (sequence and pair tasks)")
    calibration: Literal["auto", "temperature", "vector"] = Field(
        "auto", description="temperature, vector scaling, or auto: vector only where its held-out NLL is lower"
    )
    threshold_rule: str = Field(
        "f1",
        pattern=r"^(argmax|f1|youden|(sensitivity|ppv):(0(\.[0-9]+)?|1(\.0+)?))$",
        description="binary tasks: how the operating point is chosen on validation: argmax (none), f1, "
        "youden, sensitivity:X (the highest threshold reaching it), ppv:X (the lowest reaching it)",
    )
    bootstrap: int = Field(1000, ge=0, description="test-set bootstrap resamples for 95 % intervals (0: none)")
    steady_memory: bool = Field(
        True,
        description="give each step's activation memory back to the system when freed (glibc: tensors of 1 MB or "
        "more in their own mappings): peak RSS stays at one step's need, at some CPU time",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        recipe = RECIPES.get(values.get("recipe") or "bedside")
        if recipe is None:
            return values  # the Literal check reports it
        filled = dict(values)
        for key in ("rank", "alpha", "target_modules", "epochs", "dropout"):
            if filled.get(key) is None:
                filled[key] = recipe[key]
        filled.setdefault("attention_dropout", recipe["attention_dropout"])
        filled.setdefault("group_by_length", recipe["group_by_length"])
        if filled.get("lr") is None:
            method = Method(filled.get("method", Method.lora))
            filled["lr"] = 3e-5 if method is Method.full else recipe["peft_lr"]
        return filled

    def reading(self) -> LongInput:
        """The long-input strategy the artifact records."""
        return LongInput(strategy=self.long_input, pool=self.chunk_pool, stride=self.chunk_stride)

    def learning_rate(self) -> float:
        if self.lr is None:  # the recipe validator always fills it
            raise ValueError("no learning rate")
        return float(self.lr)

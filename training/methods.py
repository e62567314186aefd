"""Which PEFT config each method trains, and whether the result can be served."""

from __future__ import annotations

from peft import IA3Config, LoraConfig, PeftConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

from bedside.adapters.artifact import Method

from .settings import TrainSettings

# IA3 scales the FFN input of each layer's output projection and the attention keys/values.
IA3_TARGETS = r".*\.(key|value)|.*layer\.\d+\.output\.dense"
IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense"

# Measured with peft 0.21: a PeftModel holds one tuner type, so IA3 cannot sit beside the
# shared base's LoRA adapters, and its forward ignores per-row adapter_names (rows get the
# active adapter), so it cannot join mixed batches either.
NOT_SERVABLE = {
    Method.ia3: "IA3 does not join mixed-adapter batches (PEFT ignores per-row adapter_names for IA3 "
    "and cannot hold IA3 beside LoRA adapters); evaluate it standalone",
    Method.full: "full fine-tuning changes the shared base's weights; evaluate it standalone",
    Method.prompt: "prompt tuning changes the input sequence and cannot join mixed batches; evaluate it standalone",
    Method.prefix: "prefix tuning changes attention keys/values per batch and cannot join mixed batches; "
    "evaluate it standalone",
}


def peft_config(settings: TrainSettings) -> PeftConfig | None:
    """The PEFT config for a method; None for full fine-tuning (no PEFT)."""
    method = settings.method
    if method is Method.lora:
        return LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=list(settings.target_modules),
            bias="none",
        )
    if method is Method.ia3:
        return IA3Config(target_modules=IA3_TARGETS, feedforward_modules=IA3_FEEDFORWARD)
    if method is Method.prompt:
        return PromptTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=TaskType.FEATURE_EXTRACTION)
    if method is Method.prefix:
        return PrefixTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=TaskType.FEATURE_EXTRACTION)
    return None


def servable(method: Method) -> tuple[bool, str | None]:
    reason = NOT_SERVABLE.get(method)
    return reason is None, reason

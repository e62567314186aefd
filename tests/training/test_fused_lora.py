"""Fused LoRA training layers give PEFT's loss and gradients; attention dropout and the steady
heap are set as asked."""

from __future__ import annotations

import sys

import pytest
import torch

from bedside.adapters.examples import TokenExample
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import tiny_backbone
from bedside.training import fused_lora as fused_module
from bedside.training.fused_lora import fused_lora
from bedside.training.memory import steady_heap
from bedside.training.settings import TrainSettings
from bedside.training.trainer import SLOT, build, set_attention_dropout

EXAMPLE = TokenExample(
    words=["chest", "pain", "treated", "with", "iv", "lasix"],
    tags=["B-problem", "I-problem", "O", "O", "B-treatment", "I-treatment"],
)


def _model(**settings):
    model = build(tiny_backbone(seed=0), PRESETS["ner"], TrainSettings(**settings))
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero: give the low-rank path something to do
            torch.nn.init.normal_(p, std=0.1)
    return model.train()


def _loss_and_grads(model):
    slot = model.slots[SLOT]
    rows = [row for _ in range(3) for row in slot.kind.encode_example(slot.encoder, EXAMPLE).rows]
    torch.manual_seed(1)  # the same dropout draws on both sides
    model.zero_grad()
    loss = model.loss(rows, SLOT, list(range(len(rows))), "mean")
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_layers_give_peft_loss_and_gradients(monkeypatch):
    model = _model(dropout=0.0, target_modules=("query", "key", "value", "dense"))
    loss, grads = _loss_and_grads(model)
    calls = []
    apply = fused_module._LoraLinear.apply
    monkeypatch.setattr(fused_module._LoraLinear, "apply", lambda *a: calls.append(1) or apply(*a))
    with fused_lora(model) as n:
        fused_loss, fused_grads = _loss_and_grads(model)
    assert n == 12 and len(calls) == 12  # 6 Linear layers in each of the tiny encoder's 2 blocks
    assert fused_loss == pytest.approx(loss, abs=1e-6)
    assert grads.keys() == fused_grads.keys()
    for name in grads:
        torch.testing.assert_close(fused_grads[name], grads[name], atol=1e-6, rtol=1e-5)
    # Out of the context every layer runs PEFT's own forward again.
    calls.clear()
    _loss_and_grads(model)
    assert not calls


def test_lora_dropout_is_not_fused():
    with fused_lora(_model(dropout=0.1)) as n:
        assert n == 0


def test_recipes_set_dropout_and_attention_dropout():
    bedside, paper = TrainSettings(), TrainSettings(recipe="paper")
    assert (bedside.dropout, bedside.attention_dropout) == (0.0, 0.0)
    assert (paper.dropout, paper.attention_dropout) == (0.1, None)
    assert TrainSettings(attention_dropout=0.2).attention_dropout == 0.2
    backbone = tiny_backbone(seed=0)
    assert set_attention_dropout(backbone.encoder, 0.0) == backbone.encoder.config.num_hidden_layers
    build(backbone, PRESETS["ner"], TrainSettings(attention_dropout=0.3))
    probs = [m.p for name, m in backbone.encoder.named_modules() if name.endswith("attention.self.dropout")]
    assert probs == [0.3] * backbone.encoder.config.num_hidden_layers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_heap_sets_glibc_thresholds():
    assert steady_heap() is True

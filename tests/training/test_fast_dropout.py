"""Cheaper dropout masks: the same distribution and gradients as dropout, only in training on CPU,
seeded, and gone when the context closes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bedside.adapters.examples import TextExample
from bedside.adapters.tasks import PRESETS
from bedside.adapters.tiny import tiny_backbone
from bedside.training import fast_dropout as module
from bedside.training.fast_dropout import fast_dropout, keep_mask, keep_threshold
from bedside.training.settings import TrainSettings
from bedside.training.trainer import SLOT, build


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_masks_keep_one_minus_p_and_kept_elements_restore_the_mean(p):
    threshold, scale = keep_threshold(p)
    assert abs((1 / scale) - (1 - p)) <= 1 / 65536  # p rounded to a multiple of 1/65536
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000, 1001]), threshold)  # an odd count: the last int64 draw is cut
    assert mask.shape == (1000, 1001) and mask.dtype == torch.bool
    assert mask.float().mean().item() == pytest.approx(1 - p, abs=3e-3)
    # Every 16-bit lane of a draw is used: each column position keeps its share.
    assert mask.float().reshape(-1, 4).mean(0).sub(1 - p).abs().max().item() < 6e-3
    assert (mask.float() * scale).mean().item() == pytest.approx(1.0, abs=1e-2)


def test_masks_follow_torch_seed():
    threshold, _ = keep_threshold(0.1)
    torch.manual_seed(3)
    first = keep_mask(torch.Size([64, 64]), threshold)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask(torch.Size([64, 64]), threshold))
    assert not torch.equal(first, keep_mask(torch.Size([64, 64]), threshold))


def test_outputs_and_gradients_are_the_input_masked_and_scaled():
    layer = nn.Dropout(0.25).train()
    x = torch.randn(8, 16, 32, requires_grad=True)
    with fast_dropout(layer) as n:
        out = layer(x)
    assert n == 1
    _, scale = keep_threshold(0.25)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] * scale)
    assert 0.6 < kept.float().mean().item() < 0.9
    grad = torch.randn_like(out)
    out.backward(grad)
    torch.testing.assert_close(x.grad, grad * kept * scale)


def test_evaluation_inplace_and_p_zero_run_torch_dropout(monkeypatch):
    calls = []
    monkeypatch.setattr(module._Dropout, "apply", lambda *a: calls.append(1) or a[0])
    model = nn.Sequential(nn.Dropout(0.0), nn.Dropout(0.2, inplace=True), nn.Dropout(0.2))
    x = torch.randn(4, 4)
    with fast_dropout(model) as n:
        assert n == 2  # p = 0 is left alone
        model.eval()
        torch.testing.assert_close(model(x), x)
        assert calls == []
        model.train()
        model(x.clone())
        assert calls == [1]  # the in-place one ran torch's own
    calls.clear()
    model(x.clone())
    assert calls == []  # closed: every module is torch's again


def test_the_trainer_model_runs_its_dropouts_through_the_cheaper_masks(monkeypatch):
    model = build(tiny_backbone(seed=0), PRESETS["mortality"], TrainSettings()).train()
    expected = sum(isinstance(m, nn.Dropout) and 0 < m.p < 1 for m in model.modules())
    calls = []
    apply = module._Dropout.apply
    monkeypatch.setattr(module._Dropout, "apply", lambda *a: calls.append(1) or apply(*a))
    slot = model.slots[SLOT]
    rows = slot.kind.encode_example(slot.encoder, TextExample(text="chest pain, iv lasix", label="died")).rows
    with fast_dropout(model) as n:
        model.loss(rows, SLOT, [0] * len(rows), "mean").backward()
    assert n == expected > 0 and len(calls) == n

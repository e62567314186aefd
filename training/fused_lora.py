"""LoRA layers fused for training: ``y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`` in one autograd node.

PEFT computes ``base(x) + lora_B(lora_A(dropout(x))) * s``: per adapted Linear, three more
full-size tensors forward (B's output, its scaled copy, the sum) and their gradients backward,
kept on the autograd tape or freed and re-allocated every step. On a CPU those passes over
memory cost more than the rank-r matmuls themselves: with every Linear of a small encoder
adapted, a LoRA step ran slower than a full fine-tuning step (docs/results.md). Fused, the base
output is written once and the low-rank update added into it in place (``addmm_``); backward
adds the low-rank path into the input's gradient the same way, and only ``x`` (kept by the
tape anyway) and ``x·Aᵀ`` (rank r) are saved. The frozen base gets no weight gradient.

Only plain LoRA is fused: no dropout on the LoRA path, one active adapter, a frozen
``nn.Linear`` base, no autocast, no DoRA or other variant. Everything else, and every module
while fused is off, runs PEFT's own forward. The weights are PEFT's: the artifact is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class _LoraLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, a, b, scale: float):
        flat = x.reshape(-1, x.shape[-1])
        xa = flat @ a.t()  # [N, r]
        out = torch.addmm(bias, flat, weight.t()) if bias is not None else flat @ weight.t()
        out.addmm_(xa, b.t(), alpha=scale)
        ctx.save_for_backward(flat, xa, weight, a, b)
        ctx.scale, ctx.shape = scale, x.shape
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        flat, xa, weight, a, b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        gb = g @ b  # [N, r]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(gb, a, alpha=ctx.scale).view(ctx.shape)
        grad_a = (gb.t() @ flat).mul_(ctx.scale) if ctx.needs_input_grad[3] else None
        grad_b = (g.t() @ xa).mul_(ctx.scale) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


def _fusable(module: nn.Module) -> bool:
    from peft.tuners.lora.layer import Linear as LoraLinear

    if not isinstance(module, LoraLinear) or not isinstance(module.base_layer, nn.Linear):
        return False
    active = list(module.active_adapters)
    return (
        len(active) == 1
        and active[0] in module.lora_A
        and active[0] not in module.lora_variant
        and isinstance(module.lora_dropout[active[0]], nn.Identity)
        and module.lora_A[active[0]].bias is None
        and module.lora_B[active[0]].bias is None
    )


def _fused_forward(module: Any, original: Any):  # a PEFT LoRA Linear (its attributes are untyped)
    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        base = module.base_layer
        plain = not (args or kwargs or module.disable_adapters or module.merged)
        if not plain or base.weight.requires_grad or torch.is_autocast_enabled(x.device.type):
            return original(x, *args, **kwargs)
        (name,) = module.active_adapters
        a, b = module.lora_A[name].weight, module.lora_B[name].weight
        return _LoraLinear.apply(x.to(a.dtype), base.weight, base.bias, a, b, float(module.scaling[name]))

    return forward


@contextmanager
def fused_lora(model: nn.Module) -> Iterator[int]:
    """Inside: every fusable PEFT LoRA Linear of ``model`` runs fused; yields how many."""
    patched = []
    for module in model.modules():
        if _fusable(module):
            original = module.forward
            module.forward = _fused_forward(module, original)
            patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward  # back to the class's forward

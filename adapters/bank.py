"""LoRA adapters as banks on the base's Linear layers: one mixed-batch forward, no per-adapter loop.

Each wrapped Linear keeps every resident adapter's ``A`` (r x in) and ``B·scale``
(out x r) packed side by side. For a batch whose rows use different adapters,
``x @ A_all^T`` gives every adapter's low-rank features at once; a 0/1 mask keeps
each row's own features, and ``@ B_all^T`` adds its delta. Zeros contribute
exactly nothing, so each row gets the same result as its adapter alone, at the
cost of two thin matmuls per layer (the Punica/S-LoRA idea, for CPU and GPU).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class _Packed:
    a: torch.Tensor  # [R, in]
    b: torch.Tensor  # [out, R]
    spans: dict[str, tuple[int, int]]  # adapter -> column range in R


class BankedLinear(nn.Module):
    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.adapters: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._packed: _Packed | None = None
        self.rows: list[str] | None = None  # the adapter of each batch row, set per forward

    def add(self, name: str, a: torch.Tensor, b_scaled: torch.Tensor) -> None:
        if a.shape[1] != self.base.in_features or b_scaled.shape[0] != self.base.out_features:
            raise ValueError(f"LoRA shapes {tuple(a.shape)}/{tuple(b_scaled.shape)} do not fit "
                             f"{self.base.in_features}->{self.base.out_features}")
        w = self.base.weight
        self.adapters[name] = (a.to(w.device, w.dtype), b_scaled.to(w.device, w.dtype))
        self._packed = None

    def remove(self, name: str) -> None:
        if self.adapters.pop(name, None) is not None:
            self._packed = None

    def packed(self) -> _Packed:
        if self._packed is None:
            spans, cursor = {}, 0
            for name, (a, _) in self.adapters.items():
                spans[name] = (cursor, cursor + a.shape[0])
                cursor += a.shape[0]
            a_all = torch.cat([a for a, _ in self.adapters.values()], 0)
            b_all = torch.cat([b for _, b in self.adapters.values()], 1)
            self._packed = _Packed(a_all, b_all, spans)
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        rows = self.rows
        if rows is None:
            return out
        mine = [name in self.adapters for name in rows]
        if not any(mine):
            return out
        first = rows[0]
        if all(name == first for name in rows):  # one adapter: no mask needed
            a, b = self.adapters[first]
            return out + (x @ a.T) @ b.T
        packed = self.packed()
        mask = torch.zeros(len(rows), packed.a.shape[0], dtype=x.dtype, device=x.device)
        for i, name in enumerate(rows):
            span = packed.spans.get(name)
            if span is not None:
                mask[i, span[0]:span[1]] = 1
        return out + ((x @ packed.a.T) * mask.unsqueeze(1)) @ packed.b.T


_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


def lora_weights(config, state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT LoRA weights -> {module path: (A, B * scaling)}."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected tensor in a LoRA adapter: {key}")
        parts.setdefault(match["module"], {})[match["part"]] = tensor
    out = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{module}: LoRA needs both A and B")
        rank = ab["A"].shape[0]
        short = module.rsplit(".", 1)[-1]
        rank = (config.rank_pattern or {}).get(short, rank)
        alpha = (config.alpha_pattern or {}).get(short, config.lora_alpha)
        scale = alpha / (rank ** 0.5 if config.use_rslora else rank)
        out[module] = (ab["A"].float(), ab["B"].float() * scale)
    return out


class LoraBanks:
    """Installs BankedLinear wrappers in an encoder and routes rows to adapters."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self.banks: dict[str, BankedLinear] = {}

    def _bank(self, path: str) -> BankedLinear:
        bank = self.banks.get(path)
        if bank is None:
            parent_path, _, attr = path.rpartition(".")
            parent = self.encoder.get_submodule(parent_path) if parent_path else self.encoder
            base = getattr(parent, attr)
            if not isinstance(base, nn.Linear):
                raise ValueError(f"{path} is not a Linear layer of the base")
            bank = BankedLinear(base)
            setattr(parent, attr, bank)
            self.banks[path] = bank
        return bank

    def add(self, name: str, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for path in weights:  # check every target before touching any layer
            target = self.banks[path].base if path in self.banks else self.encoder.get_submodule(path)
            if not isinstance(target, nn.Linear):
                raise ValueError(f"{path} is not a Linear layer of the base")
        try:
            for path, (a, b) in weights.items():
                self._bank(path).add(name, a, b)
        except ValueError:
            self.remove(name)
            raise

    def remove(self, name: str) -> None:
        for bank in self.banks.values():
            bank.remove(name)

    def route(self, rows: list[str] | None) -> None:
        for bank in self.banks.values():
            bank.rows = rows

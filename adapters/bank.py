"""LoRA adapters as banks on the base's Linear layers: one mixed-batch forward, no per-adapter loop.

Each wrapped Linear keeps every resident adapter's ``A`` (r x in) and ``B·scale``
(out x r). A batch's rows arrive ordered so each adapter's rows are contiguous
(:func:`~adapters.batch.route`); each run of rows then goes through its own weights:
``W + B·A`` merged on the fly for long runs (one GEMM, no overhead but a small rank-r
update), or the base plus ``(x·Aᵀ)·Bᵀ`` for short ones. No per-adapter masks, no Python
loop over rows, and no adapter's weights are ever merged into the shared base.

The runs reach the layers through :func:`routed`, a context set once per forward: the
encoder (a transformers model) passes no extra arguments down to its Linear layers, and
nothing is stored on them, so concurrent forwards cannot see each other's runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from .batch import Run

# Segments with at least this many tokens merge W + B·A on the fly (one GEMM, no extra
# low-rank passes); shorter ones add (x·Aᵀ)·Bᵀ, cheaper than writing a merged matrix.
MERGE_MIN_TOKENS = 256

_RUNS: ContextVar[Sequence[Run] | None] = ContextVar("bedside_lora_runs", default=None)


@contextmanager
def routed(runs: Sequence[Run]) -> Iterator[None]:
    """Every BankedLinear called inside reads ``runs`` (rows start:stop through adapter slot)."""
    token = _RUNS.set(runs)
    try:
        yield
    finally:
        _RUNS.reset(token)


class BankedLinear(nn.Module):
    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.adapters: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # bank name -> (A, B·scale)

    def add(self, name: str, a: torch.Tensor, b_scaled: torch.Tensor) -> None:
        if a.shape[1] != self.base.in_features or b_scaled.shape[0] != self.base.out_features:
            raise ValueError(
                f"LoRA shapes {tuple(a.shape)}/{tuple(b_scaled.shape)} do not fit "
                f"{self.base.in_features}->{self.base.out_features}"
            )
        device, dtype = self._lora_place()
        self.adapters[name] = (a.to(device, dtype).contiguous(), b_scaled.to(device, dtype).contiguous())

    def _lora_place(self) -> tuple[torch.device, torch.dtype]:
        """Where LoRA weights live: beside a float base, or in fp32 on the CPU beside an int8 one."""
        if isinstance(self.base, nn.Linear):
            return self.base.weight.device, self.base.weight.dtype
        return torch.device("cpu"), torch.float32

    def remove(self, name: str) -> None:
        self.adapters.pop(name, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        runs = _RUNS.get()
        if runs is None or not any(run.slot in self.adapters for run in runs):
            return self.base(x)
        if len(runs) == 1:
            return self._segment(x, runs[0].slot)
        out = x.new_empty(*x.shape[:-1], self.base.out_features)
        for run in runs:
            out[run.rows] = self._segment(x[run.rows], run.slot)
        return out

    def _segment(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Rows of one adapter (or of none): the base layer plus that adapter's delta."""
        lora = self.adapters.get(name)
        if lora is None:
            return self.base(x)
        a, b = lora
        # An int8 base (dynamically quantised Linear) cannot take a merged float matrix.
        if isinstance(self.base, nn.Linear) and x.numel() // x.shape[-1] >= MERGE_MIN_TOKENS:
            return nn.functional.linear(x, torch.addmm(self.base.weight, b, a), self.base.bias)
        return self.base(x) + (x @ a.T) @ b.T


_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


def lora_weights(config, state: dict[str, torch.Tensor] | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT LoRA weights -> {module path: (A, B * scaling)}."""
    if state is None:
        raise ValueError("a LoRA adapter without weights")
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
        scale = alpha / (rank**0.5 if config.use_rslora else rank)
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

"""From raw inputs to answers through one resident adapter.

A :class:`Predictor` encodes request items (whole notes, pair items) with its adapter's
tokenisation, runs their rows (one or a window each) on any
:class:`~adapters.interface.AdapterModel` and decodes the logits, each step by the task kind's
strategy (:mod:`.kinds`). Per-request limits are constructor arguments: a predictor never
changes the slot it reads.
"""

from __future__ import annotations

from typing import Any

import torch

from .interface import AdapterModel, predict_rows
from .kinds import EncodedItem
from .limits import Budget, InputLimits
from .tasks import TaskSpec


class Predictor:
    """Answers raw requests for one adapter slot of an AdapterModel."""

    def __init__(
        self, model: AdapterModel, name: str, max_length: int | None = None, limits: InputLimits | None = None
    ) -> None:
        self.model = model
        self.slot = model.slots[name]
        self.name = name
        self.kind = self.slot.kind
        self.encoder = self.slot.encoder.with_limits(max_length)
        self.limits = limits or InputLimits()

    @property
    def task(self) -> TaskSpec:
        return self.slot.task

    def budget(self) -> Budget:
        return Budget(self.limits)

    def encode(self, item: Any, budget: Budget | None = None) -> EncodedItem:
        """A note (sequence, token) or a {text, head, tail} item (pair) -> its rows and decoding context."""
        return self.kind.encode_request(self.encoder, item, budget or self.budget())

    def is_empty(self, item: EncodedItem) -> bool:
        return self.kind.is_empty(item, self.encoder.tokenizer.num_special_tokens_to_add())

    def decode(self, item: EncodedItem, logits: list[torch.Tensor]) -> dict[str, Any]:
        return self.kind.decode(self.task, item, logits, self.slot.readout)

    @torch.inference_mode()
    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        budget = self.budget()
        encoded = [self.encode(item, budget) for item in items]
        rows = [row for item in encoded for row in item.rows]
        logits = predict_rows(self.model, rows, [self.name] * len(rows))
        out, at = [], 0
        for item in encoded:
            out.append(self.decode(item, logits[at : at + item.windows]))
            at += item.windows
        return out

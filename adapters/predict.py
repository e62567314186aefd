"""From raw inputs to answers through one resident adapter.

A :class:`Predictor` encodes request items with its adapter's tokenisation, runs them on
any :class:`~adapters.interface.AdapterModel` and decodes the logits, each step by the
task kind's strategy (:mod:`.kinds`). Per-request limits are constructor arguments: a
predictor never changes the slot it reads.
"""

from __future__ import annotations

from typing import Any

import torch

from .encoding import EncodedRow
from .interface import AdapterModel, predict_rows
from .tasks import TaskSpec


class Predictor:
    """Answers raw requests for one adapter slot of an AdapterModel."""

    def __init__(self, model: AdapterModel, name: str, truncate: bool = True, max_length: int | None = None) -> None:
        self.model = model
        self.slot = model.slots[name]
        self.name = name
        self.kind = self.slot.kind
        self.encoder = self.slot.encoder.with_limits(max_length, truncate)

    @property
    def task(self) -> TaskSpec:
        return self.slot.task

    def encode(self, item: Any) -> tuple[EncodedRow, Any]:
        """Encode a text (sequence, token) or a {text, head, tail} item (pair); return the row and context."""
        return self.kind.encode_request(self.encoder, item)

    def is_empty(self, row: EncodedRow) -> bool:
        return self.kind.is_empty(row, self.encoder.tokenizer.num_special_tokens_to_add())

    def decode(self, row: EncodedRow, logits: torch.Tensor, context: Any) -> dict[str, Any]:
        return self.kind.decode(self.task, row, logits, context)

    @torch.inference_mode()
    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        encoded = [self.encode(item) for item in items]
        logits = predict_rows(self.model, [row for row, _ in encoded], [self.name] * len(encoded))
        return [self.decode(row, out, ctx) for (row, ctx), out in zip(encoded, logits)]

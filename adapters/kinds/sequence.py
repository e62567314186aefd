"""Sequence tasks (mortality, length of stay): one label per note, read by the adapter's long-input strategy."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..encoding import EncodedRow, Encoder, TooLongError
from ..examples import TextExample
from ..heads import SequenceHead
from ..limits import Budget, check_unknown
from ..readout import IDENTITY
from ..tasks import TaskKind
from ..windows import head_tail, token_chunks
from .base import EncodedItem, KindStrategy, count_before_reading


class SequenceKind(KindStrategy):
    kind = TaskKind.sequence
    head = SequenceHead
    example_type = TextExample
    primary_metric = "auroc"

    def encode_example(self, encoder: Encoder, example: TextExample) -> EncodedItem:  # type: ignore[override]
        if not isinstance(example, TextExample):
            return super().encode_example(encoder, example)
        label = None if example.label is None else encoder.task.label_id(example.label)
        return self._read(encoder, encoder.body_ids(example.text), label)

    def encode_request(self, encoder: Encoder, item: str, budget: Budget) -> EncodedItem:
        count_before_reading(encoder, item, budget)
        ids = encoder.body_ids(item)
        budget.spend(tokens=len(ids))
        check_unknown(ids, encoder.unknown_id, budget.limits)
        return self._read(encoder, ids, None)

    def _read(self, encoder: Encoder, ids: list[int], label: int | None) -> EncodedItem:
        """A note's token ids as rows by the adapter's strategy (the same in training and serving)."""
        room, how = encoder.room, encoder.long_input
        if len(ids) <= room:
            return EncodedItem([self._row(encoder, ids, label)], strategy="whole")
        if how.strategy == "chunks":
            rows = [self._row(encoder, ids[s:e], label) for s, e in token_chunks(len(ids), room, how.stride)]
            return EncodedItem(rows, context=how.pool, strategy=f"chunks:{how.pool}")
        if not encoder.truncate:  # an encoder that must not cut (the strategy would)
            raise TooLongError(len(ids) + encoder.max_length - room, encoder.max_length)
        kept = head_tail(ids, room) if how.strategy == "head_tail" else ids[:room]
        row = self._row(encoder, kept, label, truncated=True)
        return EncodedItem([row], strategy=how.strategy, info={"tokens_not_read": len(ids) - room})

    @staticmethod
    def _row(encoder: Encoder, ids: list[int], label: int | None, truncated: bool = False) -> EncodedRow:
        return EncodedRow(encoder.wrap(ids), TaskKind.sequence, label=label, truncated=truncated)

    def is_empty(self, item, n_special):
        return all(len(row.input_ids) <= n_special for row in item.rows)

    def logits(self, item: EncodedItem, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(rows) == 1:
            return rows[0]
        stacked = torch.stack([r.float() for r in rows])
        return stacked.max(0).values if item.context == "max" else stacked.mean(0)

    def metrics(self, task, gold, pred, scores=None):
        from ..metrics import sequence_metrics

        return sequence_metrics(task, gold, pred, scores)

    def figures(self, task, g, p, scores):
        from ..resampled import sequence_figures

        return sequence_figures(task, g, p, scores)

    def score(self, task, gold, items, logits, readout=IDENTITY):
        probs = self.probabilities(logits, readout)
        pred = readout.labels(task, probs)
        return self.metrics(task, gold, pred, probs), pred

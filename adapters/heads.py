"""Task heads, kept outside PEFT so every task can have its own shape.

Each head maps the shared encoder's hidden states for its rows to logits:
``sequence`` mean-pools the tokens, ``token`` scores every position, and ``pair``
concatenates the states at the two entity markers. A head's extra inputs (the pair
head's marker positions) come from the rows through :meth:`Head.extra`, so the same
module runs in torch, in a traced ONNX graph and beside an ONNX encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .encoding import IGNORE_INDEX, EncodedRow


class Head(nn.Module):
    input_factor: ClassVar[int] = 1  # classifier input = input_factor * hidden_size
    extra_inputs: ClassVar[tuple[str, ...]] = ()  # graph inputs beside input_ids and attention_mask
    per_token: ClassVar[bool] = False  # logits per position ([k, T, L]) rather than per row ([k, L])

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.input_factor * hidden_size, num_labels)

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    @classmethod
    def extra(cls, rows: Sequence[EncodedRow]) -> np.ndarray | None:
        """The rows' extra input as int64 (None: the head needs none)."""
        return None

    def features(self, hidden: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Packed logits for a group of rows: [k, L] (sequence, pair) or [k, T, L] (token)."""
        return self.classifier(self.dropout(self.features(hidden, mask, extra)))

    def run(self, hidden: torch.Tensor, mask: torch.Tensor, rows: Sequence[EncodedRow]) -> torch.Tensor:
        """:meth:`forward` with the extra input taken from ``rows``."""
        extra = self.extra(rows)
        return self(hidden, mask, None if extra is None else torch.from_numpy(extra).to(hidden.device))

    @classmethod
    def row_logits(cls, packed: torch.Tensor, rows: Sequence[EncodedRow]) -> list[torch.Tensor]:
        """Split packed logits into one tensor per row: [L], or [words kept, L] for tokens."""
        return list(packed.unbind(0))

    class_weight: torch.Tensor | None = None  # training only: per-label loss weights (imbalanced tasks)

    def loss(self, packed: torch.Tensor, rows: Sequence[EncodedRow]) -> torch.Tensor:
        labels = torch.tensor([row.label for row in rows], device=packed.device)
        return F.cross_entropy(packed, labels, weight=self._weight(packed))

    def _weight(self, packed: torch.Tensor) -> torch.Tensor | None:
        return None if self.class_weight is None else self.class_weight.to(packed.device, packed.dtype)

    def group_loss(
        self, packed: torch.Tensor, rows: Sequence[EncodedRow], groups: Sequence[int], pool: str
    ) -> torch.Tensor:
        """One prediction per group of rows ([k, L] logits pooled by ``mean`` or ``max``), one loss."""
        index = torch.tensor(groups, device=packed.device)
        n = int(index.max()) + 1
        if pool == "max":
            pooled = torch.stack([packed[index == g].max(0).values for g in range(n)])
        else:
            sums = packed.new_zeros(n, packed.size(-1)).index_add(0, index, packed)
            pooled = sums / torch.bincount(index, minlength=n).unsqueeze(-1).to(packed.dtype)
        first = {g: row.label for g, row in reversed(list(zip(groups, rows)))}
        labels = torch.tensor([first[g] for g in range(n)], device=packed.device)
        return F.cross_entropy(pooled, labels, weight=self._weight(pooled))


class SequenceHead(Head):
    def features(self, hidden, mask, extra):
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TokenHead(Head):
    per_token = True

    def features(self, hidden, mask, extra):
        return hidden

    @classmethod
    def row_logits(cls, packed, rows):
        return [logits[row.word_starts] for logits, row in zip(packed, rows)]

    def loss(self, packed, rows):
        labels = torch.full(packed.shape[:2], IGNORE_INDEX, dtype=torch.long, device=packed.device)
        for i, row in enumerate(rows):
            labels[i, : len(row.label)] = torch.tensor(row.label, device=packed.device)
        return F.cross_entropy(packed.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


class PairHead(Head):
    input_factor = 2
    extra_inputs = ("markers",)

    @classmethod
    def extra(cls, rows):
        return np.asarray([row.markers for row in rows], dtype=np.int64).reshape(len(rows), 2)

    def features(self, hidden, mask, extra):
        picked = hidden.gather(1, extra.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))  # [k, 2, H]
        return picked.flatten(1)


def head_num_labels(state: dict[str, torch.Tensor]) -> int:
    """Output size recorded in a head's weights (to check against the label map)."""
    weight = state.get("classifier.weight")
    if weight is None or weight.dim() != 2:
        raise ValueError("head weights need a 2-d 'classifier.weight'")
    return int(weight.shape[0])


def build_head(kind, hidden_size: int, num_labels: int, dropout: float = 0.1) -> Head:
    """A fresh head for a task kind (the kind's strategy names the class)."""
    from .kinds import strategy

    return strategy(kind).head(hidden_size, num_labels, dropout)

"""Task heads, kept outside PEFT so every task can have its own shape.

Each head maps the shared encoder's hidden states for its rows to logits:
``sequence`` mean-pools the tokens, ``token`` scores every position, and ``pair``
concatenates the states at the two entity markers.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .encoding import IGNORE_INDEX, EncodedRow
from .tasks import TaskKind


class Head(nn.Module):
    kind: TaskKind
    input_factor = 1  # classifier input = input_factor * hidden_size

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.input_factor * hidden_size, num_labels)

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    def features(self, hidden: torch.Tensor, mask: torch.Tensor, rows: list[EncodedRow]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, rows: list[EncodedRow]) -> torch.Tensor:
        """Packed logits for a group of rows: [k, L] (sequence, pair) or [k, T, L] (token)."""
        return self.classifier(self.dropout(self.features(hidden, mask, rows)))

    def row_logits(self, packed: torch.Tensor, rows: list[EncodedRow]) -> list[torch.Tensor]:
        """Split packed logits into one tensor per row: [L], or [words kept, L] for tokens."""
        return list(packed.unbind(0))

    def loss(self, packed: torch.Tensor, rows: list[EncodedRow]) -> torch.Tensor:
        labels = torch.tensor([row.label for row in rows], device=packed.device)
        return F.cross_entropy(packed, labels)


class SequenceHead(Head):
    kind = TaskKind.sequence

    def features(self, hidden, mask, rows):
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TokenHead(Head):
    kind = TaskKind.token

    def features(self, hidden, mask, rows):
        return hidden

    def row_logits(self, packed, rows):
        return [logits[row.word_starts] for logits, row in zip(packed, rows)]

    def loss(self, packed, rows):
        labels = torch.full(packed.shape[:2], IGNORE_INDEX, dtype=torch.long, device=packed.device)
        for i, row in enumerate(rows):
            labels[i, : len(row.label)] = torch.tensor(row.label, device=packed.device)
        return F.cross_entropy(packed.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


class PairHead(Head):
    kind = TaskKind.pair
    input_factor = 2

    def features(self, hidden, mask, rows):
        index = torch.tensor([row.markers for row in rows], device=hidden.device)  # [k, 2]
        picked = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))  # [k, 2, H]
        return picked.flatten(1)


HEADS: dict[TaskKind, type[Head]] = {h.kind: h for h in (SequenceHead, TokenHead, PairHead)}


def build_head(kind: TaskKind, hidden_size: int, num_labels: int, dropout: float = 0.1) -> Head:
    return HEADS[TaskKind(kind)](hidden_size, num_labels, dropout)


def head_num_labels(state: dict[str, torch.Tensor]) -> int:
    """Output size recorded in a head's weights (to check against the label map)."""
    weight = state.get("classifier.weight")
    if weight is None or weight.dim() != 2:
        raise ValueError("head weights need a 2-d 'classifier.weight'")
    return int(weight.shape[0])

"""An epoch's batches: shuffled, and grouped by length so a batch carries little padding.

A batch is padded to its longest row. bc5cdr's training sentences are 36 tokens on average and up
to 128, so random batches of 32 are 60 % padding, and every padded position costs a training step
as much as a real one. Grouping keeps the shuffle: the examples are permuted, cut into windows of
``WINDOW`` batches, each window is sorted by length and cut into batches, and the batches of the
epoch are permuted again, so a step sees neighbours of similar length drawn from anywhere in the
data, in random order (the megabatch scheme of transformers' ``group_by_length``, with the batches
shuffled as well).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

WINDOW = 50  # batches per sorted window


def epoch_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator, group_by_length: bool = True
) -> list[list[int]]:
    """The indices of each batch of one epoch over examples of these lengths (tokens of an
    example's longest row). Every index appears once; without grouping, a plain shuffle."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    span = WINDOW * batch_size
    batches = []
    for start in range(0, len(order), span):
        window = sorted(order[start : start + span], key=lambda i: lengths[i], reverse=True)
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

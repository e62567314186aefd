"""An epoch's batches: every example once, shuffled, grouped by length when asked."""

from __future__ import annotations

import random

import torch

from bedside.training.batching import WINDOW, epoch_batches


def _padding(lengths, batches):
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def _lengths(n=3000, seed=0):
    rng = random.Random(seed)
    return [min(128, max(3, int(rng.lognormvariate(3.4, 0.5)))) for _ in range(n)]


def test_every_example_appears_once_in_batches_of_the_size_asked():
    lengths = _lengths(1001)
    for grouped in (True, False):
        batches = epoch_batches(lengths, 32, torch.Generator().manual_seed(0), grouped)
        assert sorted(i for b in batches for i in b) == list(range(1001))
        assert len(batches) == -(-1001 // 32) and sum(len(b) < 32 for b in batches) == 1


def test_grouping_cuts_padding_and_keeps_the_shuffle():
    lengths = _lengths()
    plain = epoch_batches(lengths, 32, torch.Generator().manual_seed(0), False)
    grouped = epoch_batches(lengths, 32, torch.Generator().manual_seed(0), True)
    assert _padding(lengths, plain) > 0.3 and _padding(lengths, grouped) < 0.05
    # Batches come in random order, not longest first.
    widths = [max(lengths[i] for i in b) for b in grouped]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)
    # A batch draws from anywhere in the data: the examples of a window come from one random
    # permutation, not from neighbouring positions of the file.
    assert max(max(b) - min(b) for b in grouped) > len(lengths) // 2
    assert len(lengths) > WINDOW * 32  # more than one window


def test_a_seed_repeats_its_epoch_and_epochs_differ():
    lengths = _lengths(500)
    generator = torch.Generator().manual_seed(7)
    first, second = epoch_batches(lengths, 16, generator), epoch_batches(lengths, 16, generator)
    assert first != second
    assert epoch_batches(lengths, 16, torch.Generator().manual_seed(7)) == first

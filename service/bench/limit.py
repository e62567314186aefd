"""The machine's measured matmul peak and the model FLOP/s achieved against it."""

from __future__ import annotations

import time

import torch


def matmul_peak(n: int = 2048, repeats: int = 10, dtype=torch.float32, device="cpu") -> float:
    """Best FLOP/s over ``repeats`` n x n matrix products."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    with torch.inference_mode():
        a @ b
        for _ in range(repeats):
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def encoder_flops(config, tokens_per_row: list[int]) -> float:
    """Useful FLOPs of a BERT-style encoder forward over real tokens (padding excluded)."""
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for t in tokens_per_row:
        dense = 2 * t * (4 * h * h + 2 * h * ffn)  # q, k, v, out projections and the FFN
        attention = 2 * 2 * t * t * h  # scores and the weighted sum
        total += layers * (dense + attention)
    return total

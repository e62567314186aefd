"""What both synthetic generators share: weighted choices, pronouns, template filling."""

from __future__ import annotations

import math
import random


def weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in pairs], weights=[w for _, w in pairs])[0]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def pronouns(sex: str) -> dict[str, str]:
    if sex == "M":
        return {"he": "he", "He": "He", "his": "his", "him": "him"}
    return {"he": "she", "He": "She", "his": "her", "him": "her"}


def fill(rng: random.Random, template: str, pro: dict[str, str]) -> str:
    return template.format(n=rng.randint(2, 9), nn=rng.randint(10, 60), x=round(rng.uniform(2.5, 6.0), 1), **pro)

"""Which requests a canary answers: a stable share of request ids, else a random one.

A request id (``X-Request-ID``) is hashed with the task name into [0, 1): the same id always
lands on the same side of the split, in every replica, and raising the share from 10 % to 25 %
keeps the first 10 % on the canary. The id is only hashed: never stored, logged or labelled.
"""

from __future__ import annotations

import hashlib
import random


def bucket(task: str, key: str) -> float:
    digest = hashlib.sha256(f"{task}\0{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_canary(task: str, key: str | None, percent: float) -> bool:
    """True when the request goes to the canary (``percent``: its share, 0-100)."""
    share = bucket(task, key) if key else random.random()
    return share * 100 < percent

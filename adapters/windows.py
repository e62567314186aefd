"""Windows over a long input: where each model row starts and ends, and which row speaks for a word.

Token tasks cut a note into windows of whole words that fit the adapter's length, preferring to
end at a sentence or line boundary; consecutive windows overlap by about ``1 - stride`` of a
window, so every word is read with context on both sides somewhere, and each word takes its tag
from the window where it has the most context (:func:`best_windows`). Sequence tasks read a long
note by one of three strategies (:data:`STRATEGIES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

STRATEGIES = ("truncate", "head_tail", "chunks")  # how a sequence task reads a note longer than a row
HEAD_SHARE = 0.25  # head_tail: the share of a row given to the note's first tokens (the rest: its last)


def word_windows(
    pieces: Sequence[int], sentences: Sequence[int], room: int, stride: float = 0.5
) -> list[tuple[int, int]]:
    """``[start, end)`` word ranges whose piece counts fit ``room``, covering every word.

    A window ends at a sentence boundary when one lies in its second half; the next window starts
    about ``stride`` of a window later, at a sentence start when the overlap allows, so whole
    sentences that fit are read whole. A word longer than ``room`` pieces gets a window of its own
    (its pieces are cut there, the only cut inside a word)."""
    n = len(pieces)
    windows: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end, used = start, 0
        while end < n and (used + pieces[end] <= room or end == start):
            used += pieces[end]
            end += 1
        if end < n:  # not the last window: back off to a sentence boundary in the second half
            cut = _sentence_cut(sentences, start, end, pieces, room)
            end = cut if cut is not None else end
        if windows and end <= windows[-1][1]:  # nothing new in it (a word too long for overlap)
            start = windows[-1][1]
            continue
        windows.append((start, end))
        if end >= n:
            break
        start = _next_start(pieces, sentences, start, end, room, stride)
    return windows


def _sentence_cut(sentences, start, end, pieces, room) -> int | None:
    """The latest cut ``c`` in ``(start, end]`` at a sentence start whose window ``[start, c)`` is
    at least half full."""
    used = sum(pieces[start:end])
    for cut in range(end, start, -1):
        if used * 2 < room:
            return None
        if sentences[cut] != sentences[cut - 1]:
            return cut
        used -= pieces[cut - 1]
    return None


def _next_start(pieces, sentences, start, end, room, stride) -> int:
    """Where the window after ``[start, end)`` starts: about ``stride`` of a window further, moved to
    the nearest sentence start inside the window (the latest one up to that point, else the first
    after it); at ``end`` when the window is one whole sentence; never at or before ``start``."""
    target, used = start, 0
    while target < end - 1 and used < stride * room:
        used += pieces[target]
        target += 1
    target = max(target, start + 1)
    starts = [c for c in range(start + 1, end) if sentences[c] != sentences[c - 1]]
    earlier = [c for c in starts if c <= target]
    if earlier:
        return earlier[-1]
    if starts:
        return starts[0]
    whole = sentences[start] != sentences[start - 1] if start else True
    if whole and sentences[end] != sentences[end - 1]:  # one whole sentence: the next starts fresh
        return end
    return target


def best_windows(windows: Sequence[tuple[int, int]], pieces: Sequence[int]) -> list[int]:
    """For every word, the window where the fewest pieces separate it from the window's nearer
    edge (most context on both sides); ties go to the earlier window."""
    n = windows[-1][1] if windows else 0
    best, score = [0] * n, [-1] * n
    for w, (start, end) in enumerate(windows):
        before, total = 0, sum(pieces[start:end])
        for word in range(start, end):
            context = min(before, total - before - pieces[word])
            if context > score[word]:
                best[word], score[word] = w, context
            before += pieces[word]
    return best


def token_chunks(n_tokens: int, room: int, stride: float = 0.5) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges of at most ``room`` covering ``n_tokens``, ``stride`` of a room apart."""
    if n_tokens <= room:
        return [(0, n_tokens)]
    step = max(1, int(room * stride))
    starts = list(range(0, n_tokens - room, step)) + [n_tokens - room]
    return [(s, s + room) for s in starts]


def head_tail(ids: Sequence[int], room: int) -> list[int]:
    """The first ``HEAD_SHARE`` of a row from the start of ``ids``, the rest from its end."""
    if len(ids) <= room:
        return list(ids)
    head = int(room * HEAD_SHARE)
    return list(ids[:head]) + list(ids[len(ids) - (room - head) :])


# One declaration of each long-input field: the artifact's record and the training flags share it.
Strategy = Annotated[
    Literal["truncate", "head_tail", "chunks"],
    Field(
        description="sequence tasks: how a note longer than a row is read, in training and serving alike "
        "(truncate: its first tokens, the paper's; head_tail: the first quarter of a row from its start, "
        "the rest from its end; chunks: every window, logits pooled)"
    ),
]
ChunkPool = Annotated[Literal["mean", "max"], Field(description="chunks: how the windows' logits combine")]
ChunkStride = Annotated[float, Field(gt=0, le=1, description="chunks: windows start this share of a row apart")]


class LongInput(BaseModel):
    """How a sequence adapter reads a note longer than one row: chosen at training, stored in the
    artifact, used the same way when serving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = "truncate"
    pool: ChunkPool = "mean"
    stride: ChunkStride = 0.5

"""Pair tasks (relations): a label for two marked entities, each pair read in a local window."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, ClassVar

from ..encoding import mark_entities
from ..examples import PairExample, Span
from ..heads import PairHead
from ..limits import Budget, InputLimits, InputRefused
from ..tasks import TaskKind
from .base import EncodedItem, KindStrategy

CONTEXT_CHARS_PER_TOKEN = 6  # a local window reaches this many characters per row token beyond the entities


class PairKind(KindStrategy):
    kind = TaskKind.pair
    head = PairHead
    example_type = PairExample
    primary_metric = "relation_f1"
    request_field = "items"
    request_hint = "a pair task takes 'items' ({text, head, tail})"
    # i2b2 2010: which entity types form a candidate pair, as (head, tail) types.
    CANDIDATE_TYPES: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {("treatment", "problem"), ("test", "problem"), ("problem", "problem")}
    )

    def _encode(self, encoder, example):
        return encoder.encode_pair(example.text, example.head, example.tail, example.label)

    def encode_request(self, encoder, item: dict, budget: Budget) -> EncodedItem:
        text, head, tail = item["text"], as_span(item["head"]), as_span(item["tail"])
        if head.end > len(text) or tail.end > len(text):
            raise InputRefused("an entity span is outside the text")
        local, head, tail = local_window(text, head, tail, encoder.max_length * CONTEXT_CHARS_PER_TOKEN)
        row = encoder.encode_pair(local, head, tail, strict=True)
        budget.spend(tokens=len(row.input_ids), words=2)
        return EncodedItem([row], strategy="local window" if local is not text else "whole")

    def request_item(self, example):
        return {
            "text": example.text,
            "head": {"start": example.head.start, "end": example.head.end},
            "tail": {"start": example.tail.start, "end": example.tail.end},
        }

    def metrics(self, task, gold, pred, scores=None):
        from ..metrics import pair_metrics

        return pair_metrics(task, gold, pred)

    def figures(self, task, g, p, scores):
        from ..resampled import pair_figures

        return pair_figures(task, g, p)

    def placeholder_row(self, ids):
        from ..encoding import EncodedRow

        return EncodedRow(ids, self.kind, n_words=len(ids) - 2, markers=(1, 3))

    def pipeline_input(self, item):
        text, _, _ = mark_entities(item["text"], as_span(item["head"]), as_span(item["tail"]))
        return text, {"truncation": True, "max_length": 128}

    @classmethod
    def candidate_pairs(cls, types: Sequence[str], groups: Sequence[Any] | None = None) -> list[tuple[int, int]]:
        """The i2b2 candidate pairs among entities of ``types``, as (head, tail) indices: every
        treatment or test with a problem (the treatment/test first), and every two problems
        (the earlier first). ``groups`` (e.g. sentence numbers): pairs only within one group."""
        pairs = []
        for i in range(len(types)):
            for j in range(i + 1, len(types)):
                if groups is not None and groups[i] != groups[j]:
                    continue
                pair = cls.oriented(types, i, j)
                if pair is not None:
                    pairs.append(pair)
        return pairs

    @classmethod
    def oriented(cls, types: Sequence[str], i: int, j: int) -> tuple[int, int] | None:
        """Entities ``i`` < ``j`` as a (head, tail) candidate pair, or None when their types make none."""
        if (types[i], types[j]) in cls.CANDIDATE_TYPES:
            return i, j
        if (types[j], types[i]) in cls.CANDIDATE_TYPES:
            return j, i
        return None


def note_pairs(text: str, entities: Sequence[dict], reach: int = 0) -> list[tuple[int, int]]:
    """The candidate pairs of the entities found in a note (``{"start", "end", "type"}``): i2b2's
    rule within each sentence, and across sentences between entities at most ``reach`` characters
    apart (0: none), sorted."""
    from ..text import sentence_ids

    types = [e["type"] for e in entities]
    sentences = sentence_ids(text, [Span(e["start"], e["end"]) for e in entities])
    pairs = set(PairKind.candidate_pairs(types, sentences))
    if reach:
        pairs |= {(i, j) for i, j in PairKind.candidate_pairs(types) if _gap(entities[i], entities[j]) <= reach}
    return sorted(pairs)


ALNUM_RUN = re.compile(r"\w+")  # a run the tokenizer reads as at least one token ([UNK] at worst)


def pair_items(text: str, entities: Sequence[dict], pairs: Sequence[tuple[int, int]]) -> list[dict]:
    """Each candidate pair of a note as a relation item over the sentences that hold it, from the
    first one's start to the other's end, spans moved into it: what an i2b2 relation row reads (a
    sentence, as in training), not the note around it, so a whole note's pairs cost rows of a
    sentence's length. A long sentence is still cut to the pair's local window when encoded."""
    from ..text import sentence_ends, sentence_span

    ends = sentence_ends(text)
    spans = [as_span(e) for e in entities]
    # each entity's reach once (a sentence, or two when it crosses an end), not once per pair
    reach = [
        Span(
            min(sentence_span(text, ends, s.start).start, s.start), max(sentence_span(text, ends, s.end - 1).end, s.end)
        )
        for s in spans
    ]
    items = []
    for i, j in pairs:
        head, tail = spans[i], spans[j]
        start, end = min(reach[i].start, reach[j].start), max(reach[i].end, reach[j].end)
        items.append(
            {
                "text": text[start:end],
                "head": {"start": head.start - start, "end": head.end - start},
                "tail": {"start": tail.start - start, "end": tail.end - start},
            }
        )
    return items


def note_candidates(
    text: str, entities: Sequence[dict], limits: InputLimits, room: int | None = None
) -> tuple[list[tuple[int, int]], int]:
    """The candidate pairs /extract reads in a note (:func:`note_pairs` with the limits' reach
    across sentences), and how many more were left out as too far apart: further than a row of
    ``room`` tokens holds, or than ``limits.pair_max_words`` words (0: no such bound). From one
    entity's start to the other's there are at least as many tokens as runs of letters and
    digits, so a pair ``room`` runs apart would be refused by its row (``EntitiesTooFar``): it is
    no candidate, and costs neither a tokenisation nor a place under ``max_pairs``. Within one
    sentence pairs are rarely far apart (none of the ACI visit notes' pairs is over 48 words), but
    a transcript turn without punctuation is one "sentence" of hundreds of words.

    With a bound, only pairs within it are visited (entities in text order, each against those
    that follow it within the bound) and the rest are counted per sentence from the entity types:
    thousands of entities in one unpunctuated text cost milliseconds, not the seconds that
    visiting every pair took on the event loop."""
    reach = [bound for bound in (room, limits.pair_max_words) if bound]
    if not reach:
        return note_pairs(text, entities, limits.pair_distance_chars), 0
    from ..text import sentence_ids

    bound, chars = min(reach), limits.pair_distance_chars
    types = [e["type"] for e in entities]
    sentences = sentence_ids(text, [Span(e["start"], e["end"]) for e in entities])
    starts = [m.start() for m in ALNUM_RUN.finditer(text)]
    run_at = [bisect_left(starts, e["start"]) for e in entities]
    order = sorted(range(len(entities)), key=lambda k: (run_at[k], k))
    kept = []
    for a, i in enumerate(order):
        for b in range(a + 1, len(order)):
            j = order[b]
            if run_at[j] - run_at[i] >= bound:
                break
            if sentences[i] == sentences[j] or (chars and _gap(entities[i], entities[j]) <= chars):
                pair = PairKind.oriented(types, min(i, j), max(i, j))
                if pair is not None:
                    kept.append(pair)
    total = _count_within_sentences(types, sentences)
    if chars:
        total += _count_across(entities, types, sentences, chars)
    return sorted(kept), total - len(kept)


def _gap(a: dict, b: dict) -> int:
    return max(a["start"], b["start"]) - min(a["end"], b["end"])


def _count_within_sentences(types: Sequence[str], sentences: Sequence[int]) -> int:
    """How many candidate pairs lie within a sentence, from each sentence's count of each type."""
    from collections import Counter

    counts = Counter(zip(sentences, types))
    total = 0
    for sentence in set(sentences):
        for a, b in PairKind.CANDIDATE_TYPES:
            if a == b:
                total += counts[sentence, a] * (counts[sentence, a] - 1) // 2
            else:
                total += counts[sentence, a] * counts[sentence, b]
    return total


def _count_across(entities: Sequence[dict], types: Sequence[str], sentences: Sequence[int], chars: int) -> int:
    """How many candidate pairs in different sentences are at most ``chars`` characters apart."""
    order = sorted(range(len(entities)), key=lambda k: entities[k]["start"])
    total = 0
    for a, i in enumerate(order):
        for b in range(a + 1, len(order)):
            j = order[b]
            if entities[j]["start"] - entities[i]["end"] > chars:
                break
            if sentences[i] != sentences[j] and _gap(entities[i], entities[j]) <= chars:
                total += PairKind.oriented(types, min(i, j), max(i, j)) is not None
    return total


def local_window(text: str, head: Span, tail: Span, reach: int) -> tuple[str, Span, Span]:
    """The part of ``text`` within ``reach`` characters of the two entities (cut at white space),
    with the spans moved into it; the whole text when it is short enough."""
    lo, hi = min(head.start, tail.start), max(head.end, tail.end)
    start, end = max(0, lo - reach), min(len(text), hi + reach)
    if start == 0 and end == len(text):
        return text, head, tail
    while start > 0 and not text[start - 1].isspace() and lo - start < 2 * reach:
        start -= 1
    while end < len(text) and not text[end].isspace() and end - hi < 2 * reach:
        end += 1
    return (text[start:end], Span(head.start - start, head.end - start), Span(tail.start - start, tail.end - start))


def as_span(value: Any) -> Span:
    """A span from a Span, ``{"start", "end"}`` or a (start, end) pair."""
    if isinstance(value, Span):
        return value
    if isinstance(value, dict):
        return Span(int(value["start"]), int(value["end"]))
    start, end = value
    return Span(int(start), int(end))

"""Token tasks (clinical NER): BIO tags per word; a note of any length read in overlapping windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..agreement import entity_agreement, entity_scores
from ..decoding import bio_entities, softmax, word_tags
from ..encoding import EncodedRow, Encoder
from ..examples import Span, TokenExample
from ..heads import TokenHead
from ..limits import Budget, check_unknown
from ..tasks import TaskKind
from ..text import sentence_ids, split_words
from ..windows import best_windows, word_windows
from .base import EncodedItem, KindStrategy, count_before_reading


@dataclass
class _Note:
    text: str
    spans: list[Span]
    best: list[int]  # per word: the window whose row gives its tag


class TokenKind(KindStrategy):
    kind = TaskKind.token
    head = TokenHead
    example_type = TokenExample
    primary_metric = "entity_f1"
    auto_model = "AutoModelForTokenClassification"
    pipeline_task = "token-classification"
    label_answers = False  # a tag per word: no temperature, no operating point

    def _encode(self, encoder, example):
        return encoder.encode_words(example.words, example.tags)

    def gold(self, example):
        return example.tags

    def encode_request(self, encoder: Encoder, item: str, budget: Budget) -> EncodedItem:
        count_before_reading(encoder, item, budget)  # building every word first would hold the GIL
        words = split_words(item)
        if not words:
            raise ValueError("the text has no words")
        pieces = encoder.word_pieces([w for w, _ in words], on_count=lambda n: budget.spend(tokens=n))
        flat = [p for word in pieces for p in word]
        check_unknown(flat, encoder.unknown_id, budget.limits)
        spans = [s for _, s in words]
        counts = [len(p) for p in pieces]
        windows = word_windows(counts, sentence_ids(item, spans), encoder.room, budget.limits.stride)
        rows = [self._row(encoder, pieces, start, end) for start, end in windows]
        return EncodedItem(
            rows, _Note(item, spans, best_windows(windows, counts)), strategy="whole" if len(rows) == 1 else "windows"
        )

    @staticmethod
    def _row(encoder: Encoder, pieces: list[list[int]], start: int, end: int) -> EncodedRow:
        """One window's row: its words' pieces between special tokens; each word's first piece marked."""
        ids: list[int] = []
        first: list[tuple[int, int]] = []  # (position in ids, word)
        for word in range(start, end):
            if pieces[word] and len(ids) < encoder.room:
                first.append((len(ids), word))
                ids.extend(pieces[word][: encoder.room - len(ids)])  # only an over-long word is cut
        lead = encoder.lead
        return EncodedRow(
            encoder.wrap(ids),
            TaskKind.token,
            word_starts=[lead + p for p, _ in first],
            word_index=[w for _, w in first],
            n_words=end - start,
        )

    def is_empty(self, item, n_special):
        return not any(row.word_starts for row in item.rows)

    def word_tags(
        self, task, item: EncodedItem, rows: Sequence[torch.Tensor]
    ) -> tuple[list[int], list[str], list[float]]:
        """The note's words that have tokens (a word the tokenizer drops splits no entity), each with
        the tag and probability its best window gives it."""
        note: _Note = item.context
        at = [{word: k for k, word in enumerate(row.word_index or [])} for row in item.rows]
        kept, logits = [], []
        for word, window in enumerate(note.best):
            k = at[window].get(word)
            if k is not None:
                kept.append(word)
                logits.append(rows[window][k])
        if not kept:
            return [], [], []
        p = softmax(torch.stack(logits))
        index = p.argmax(-1)
        return kept, [task.labels[i] for i in index.tolist()], p[range(len(index)), index].tolist()

    def decode(self, task, item: EncodedItem, rows: Sequence[torch.Tensor], readout=None) -> dict[str, Any]:
        note: _Note = item.context
        kept, tags, scores = self.word_tags(task, item, rows)
        entities = bio_entities(note.text, [note.spans[w] for w in kept], tags, scores)
        return {"entities": [e.as_dict() for e in entities], **self.how(item)}

    def agreement(self, active, candidate):
        return entity_agreement(active, candidate)

    def answer_scores(self, answer):
        return entity_scores(answer)

    def predictions(self, task, items, logits, readout=None):
        return [word_tags(task, lg, it.rows[0].n_words, it.rows[0].word_index)[0] for lg, it in zip(logits, items)]

    def metrics(self, task, gold, pred, scores=None):
        from ..metrics import token_metrics

        return token_metrics(task, gold, pred)

    def label_counts(self, gold):
        return super().label_counts([tag[2:] for tags in gold for tag in tags if tag.startswith("B-")])

    def resampling(self, task, gold, pred, scores=None):
        """Strict entity counts per sentence, summed per resample: the same figures as seqeval's
        on the whole set, at a thousandth of its cost."""
        from ..resampled import entity_counts, metrics_from_counts

        counts = entity_counts(gold, pred)
        return lambda index: metrics_from_counts(counts[index])

    def placeholder_row(self, ids):
        return EncodedRow(ids, self.kind, word_starts=list(range(1, len(ids) - 1)), n_words=len(ids) - 2)

    def pipeline_input(self, item):
        return item, {}

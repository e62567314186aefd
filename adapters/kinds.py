"""Task kinds as strategies: everything that differs between sequence, token and pair tasks.

One object per kind owns how an example or a request becomes a model row, when a row has
no content, how logits become an answer, how predictions are scored, which head it uses,
and (pair tasks) which entity pairs are candidates. The rest of bedside is kind-neutral:
it asks :func:`strategy` (as PEFT's ``LoraVariant`` classes replace branches in ``forward``).
A new kind is a subclass here plus a :class:`~.tasks.TaskKind` member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from .decoding import bio_entities, label_output, word_tags
from .encoding import EncodedRow, Encoder, split_words
from .examples import Example, PairExample, Span, TextExample, TokenExample
from .heads import Head, PairHead, SequenceHead, TokenHead
from .tasks import TaskKind, TaskSpec


class KindStrategy:
    """The behaviour of one task kind. Subclasses set the class attributes and override what differs."""

    kind: ClassVar[TaskKind]
    head: ClassVar[type[Head]]
    example_type: ClassVar[type]
    primary_metric: ClassVar[str]  # picks the best epoch
    request_field: ClassVar[str] = "texts"  # what a /predict request carries for this kind
    request_hint: ClassVar[str] = "this task takes 'texts'"
    builtin_input: ClassVar[Any]  # a smoke input when an artifact has no examples
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"  # the transformers baseline's class
    pipeline_task: ClassVar[str] = "text-classification"

    # -- rows -------------------------------------------------------------------------
    def encode(self, encoder: Encoder, example: Example) -> EncodedRow:
        """A labelled (or unlabelled) training example -> one row."""
        if not isinstance(example, self.example_type):
            raise TypeError(f"task {encoder.task.name!r} ({self.kind.value}) cannot encode {type(example).__name__}")
        return self._encode(encoder, example)

    def _encode(self, encoder: Encoder, example: Any) -> EncodedRow:
        raise NotImplementedError

    def encode_request(self, encoder: Encoder, item: Any) -> tuple[EncodedRow, Any]:
        """A raw request item -> its row and what :meth:`decode` needs besides the logits."""
        raise NotImplementedError

    def request_item(self, example: Any) -> Any:
        """An example as a request would send it (smoke examples in artifacts)."""
        return example.text

    def is_empty(self, row: EncodedRow, n_special: int) -> bool:
        """True when nothing of the input survived tokenisation (e.g. only control characters)."""
        return False

    # -- answers ------------------------------------------------------------------------
    def decode(self, task: TaskSpec, row: EncodedRow, logits: torch.Tensor, context: Any) -> dict[str, Any]:
        out = label_output(task, logits)
        if row.truncated:
            out["truncated"] = True
        return out

    def predictions(self, task: TaskSpec, rows: Sequence[EncodedRow], logits: Sequence[torch.Tensor]) -> list:
        """One label per row (sequence, pair) or one tag list per row (token)."""
        return [task.labels[int(i)] for i in self.probabilities(logits).argmax(1)]

    @staticmethod
    def probabilities(logits: Sequence[torch.Tensor]) -> np.ndarray:
        """[n, L] class probabilities (float32, as evaluation has always scored them)."""
        return torch.stack([torch.softmax(lg.float(), -1) for lg in logits]).numpy()

    # -- scoring ------------------------------------------------------------------------
    def metrics(self, task: TaskSpec, gold, pred, scores=None) -> dict[str, float]:
        raise NotImplementedError

    def score(
        self, task: TaskSpec, gold: list, rows: Sequence[EncodedRow], logits: Sequence[torch.Tensor]
    ) -> tuple[dict[str, float], list]:
        """Metrics of the model's logits against gold labels, and the predictions scored."""
        pred = self.predictions(task, rows, logits)
        return self.metrics(task, gold, pred), pred

    def gold(self, example: Any) -> Any:
        """What an example's prediction is scored against (a label, or a tag list)."""
        return example.label

    # -- benchmarks -------------------------------------------------------------------------
    def placeholder_row(self, ids: list[int]) -> EncodedRow:
        """A row of given token ids shaped for this kind's head (speed benchmarks)."""
        return EncodedRow(ids, self.kind, n_words=len(ids) - 2)

    def pipeline_input(self, item: Any) -> tuple[str, dict[str, Any]]:
        """A request item as a transformers ``pipeline`` call takes it: (text, call options)."""
        return item, {"truncation": True, "max_length": 128}


class SequenceKind(KindStrategy):
    kind = TaskKind.sequence
    head = SequenceHead
    example_type = TextExample
    primary_metric = "auroc"
    builtin_input = "patient admitted with chest pain and fever"

    def _encode(self, encoder, example):
        return encoder.encode_text(example.text, example.label)

    def encode_request(self, encoder, item):
        return encoder.encode_text(item), None

    def is_empty(self, row, n_special):
        return len(row.input_ids) <= n_special

    def metrics(self, task, gold, pred, scores=None):
        from .metrics import sequence_metrics

        return sequence_metrics(task, gold, pred, scores)

    def score(self, task, gold, rows, logits):
        probs = self.probabilities(logits)
        pred = [task.labels[int(i)] for i in probs.argmax(1)]
        return self.metrics(task, gold, pred, probs), pred


class TokenKind(KindStrategy):
    kind = TaskKind.token
    head = TokenHead
    example_type = TokenExample
    primary_metric = "entity_f1"
    builtin_input = "chest pain treated with iv lasix"
    auto_model = "AutoModelForTokenClassification"
    pipeline_task = "token-classification"

    def _encode(self, encoder, example):
        return encoder.encode_words(example.words, example.tags)

    def encode_request(self, encoder, item):
        words = split_words(item)
        if not words:
            raise ValueError("the text has no words")
        return encoder.encode_words([w for w, _ in words]), (item, [s for _, s in words])

    def is_empty(self, row, n_special):
        return not row.word_starts

    def decode(self, task, row, logits, context):
        text, spans = context
        if row.word_index is not None:  # words without a token (dropped characters) do not split entities
            spans = [spans[w] for w in row.word_index]
        tags, scores = word_tags(task, logits, len(spans))
        out: dict[str, Any] = {"entities": [e.as_dict() for e in bio_entities(text, spans, tags, scores)]}
        if row.truncated:
            out["truncated"] = True
        return out

    def predictions(self, task, rows, logits):
        return [word_tags(task, lg, row.n_words, row.word_index)[0] for lg, row in zip(logits, rows)]

    def gold(self, example):
        return example.tags

    def metrics(self, task, gold, pred, scores=None):
        from .metrics import token_metrics

        return token_metrics(task, gold, pred)

    def placeholder_row(self, ids):
        return EncodedRow(ids, self.kind, word_starts=list(range(1, len(ids) - 1)), n_words=len(ids) - 2)

    def pipeline_input(self, item):
        return item, {}


class PairKind(KindStrategy):
    kind = TaskKind.pair
    head = PairHead
    example_type = PairExample
    primary_metric = "relation_f1"
    request_field = "items"
    request_hint = "a pair task takes 'items' ({text, head, tail})"
    builtin_input = {
        "text": "aspirin was given for chest pain",
        "head": {"start": 0, "end": 7},
        "tail": {"start": 22, "end": 32},
    }
    # i2b2 2010: which entity types form a candidate pair, as (head, tail) types.
    CANDIDATE_TYPES: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {("treatment", "problem"), ("test", "problem"), ("problem", "problem")}
    )

    def _encode(self, encoder, example):
        return encoder.encode_pair(example.text, example.head, example.tail, example.label)

    def encode_request(self, encoder, item):
        return encoder.encode_pair(item["text"], as_span(item["head"]), as_span(item["tail"])), None

    def request_item(self, example):
        return {
            "text": example.text,
            "head": {"start": example.head.start, "end": example.head.end},
            "tail": {"start": example.tail.start, "end": example.tail.end},
        }

    def metrics(self, task, gold, pred, scores=None):
        from .metrics import pair_metrics

        return pair_metrics(task, gold, pred)

    def placeholder_row(self, ids):
        return EncodedRow(ids, self.kind, n_words=len(ids) - 2, markers=(1, 3))

    def pipeline_input(self, item):
        from .encoding import mark_entities  # the same entity markers bedside inserts

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
                if (types[i], types[j]) in cls.CANDIDATE_TYPES:
                    pairs.append((i, j))
                elif (types[j], types[i]) in cls.CANDIDATE_TYPES:
                    pairs.append((j, i))
        return pairs


def as_span(value: Any) -> Span:
    """A span from a Span, ``{"start", "end"}`` or a (start, end) pair."""
    if isinstance(value, Span):
        return value
    if isinstance(value, dict):
        return Span(int(value["start"]), int(value["end"]))
    start, end = value
    return Span(int(start), int(end))


PAIR = PairKind()
STRATEGIES: dict[TaskKind, KindStrategy] = {s.kind: s for s in (SequenceKind(), TokenKind(), PAIR)}


def strategy(kind: TaskKind | str) -> KindStrategy:
    """The strategy of a task kind (or of its name)."""
    return STRATEGIES[TaskKind(kind)]

"""The strategy interface every task kind implements, and what a request becomes (:class:`EncodedItem`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..agreement import Agreement, label_agreement, label_scores
from ..encoding import EncodedRow, Encoder
from ..examples import Example
from ..heads import Head
from ..limits import Budget
from ..readout import IDENTITY, Readout
from ..tasks import TaskKind, TaskSpec
from ..text import count_words


@dataclass
class EncodedItem:
    """One example or request item as model rows (one, or a window each), and what decoding needs."""

    rows: list[EncodedRow]
    context: Any = None
    strategy: str = "whole"  # how the input was read: whole, windows, truncate, head_tail, chunks
    info: dict[str, Any] = field(default_factory=dict)  # reported in the answer (e.g. truncated tokens)

    @property
    def windows(self) -> int:
        return len(self.rows)

    @property
    def longest(self) -> int:
        """Tokens of the longest row: what a batch is padded to."""
        return max((len(row) for row in self.rows), default=0)


class KindStrategy:
    """The behaviour of one task kind. Subclasses set the class attributes and override what differs."""

    kind: ClassVar[TaskKind]
    head: ClassVar[type[Head]]
    example_type: ClassVar[type]
    primary_metric: ClassVar[str]  # picks the best epoch
    request_field: ClassVar[str] = "texts"  # what a /predict request carries for this kind
    label_answers: ClassVar[bool] = True  # one label per item: calibrated, thresholded, class-weighted
    request_hint: ClassVar[str] = "this task takes 'texts'"
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"  # the transformers baseline's class
    pipeline_task: ClassVar[str] = "text-classification"

    # -- training examples ------------------------------------------------------------
    def encode(self, encoder: Encoder, example: Example) -> EncodedRow:
        """A labelled (or unlabelled) training example -> its first row."""
        return self.encode_example(encoder, example).rows[0]

    def encode_example(self, encoder: Encoder, example: Example) -> EncodedItem:
        """A training example -> its rows (one; several for a sequence task read by chunks)."""
        if not isinstance(example, self.example_type):
            raise TypeError(f"task {encoder.task.name!r} ({self.kind.value}) cannot encode {type(example).__name__}")
        return EncodedItem([self._encode(encoder, example)])

    def _encode(self, encoder: Encoder, example: Any) -> EncodedRow:
        raise NotImplementedError

    def request_item(self, example: Any) -> Any:
        """An example as a request would send it (smoke examples in artifacts)."""
        return example.text

    def gold(self, example: Any) -> Any:
        """What an example's prediction is scored against (a label, or a tag list)."""
        return example.label

    # -- requests -----------------------------------------------------------------------
    def encode_request(self, encoder: Encoder, item: Any, budget: Budget) -> EncodedItem:
        """A raw request item (a note of any length, or a pair item) -> its rows and decoding context;
        raises :class:`~..limits.InputRefused` when it passes a limit of ``budget``."""
        raise NotImplementedError

    def is_empty(self, item: EncodedItem, n_special: int) -> bool:
        """True when nothing of the input survived tokenisation (e.g. only control characters)."""
        return False

    # -- answers ------------------------------------------------------------------------
    def logits(self, item: EncodedItem, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        """One item's answer logits from its rows' logits (one row: that row's)."""
        return rows[0]

    def decode(
        self, task: TaskSpec, item: EncodedItem, rows: Sequence[torch.Tensor], readout: Readout = IDENTITY
    ) -> dict[str, Any]:
        from ..decoding import label_output

        return {**label_output(task, self.logits(item, rows), readout), **self.how(item)}

    def agreement(self, active: dict[str, Any], candidate: dict[str, Any]) -> Agreement:
        """How a candidate version's answer to one item agrees with the active version's."""
        return label_agreement(active, candidate)

    def answer_scores(self, answer: dict[str, Any]) -> list[float]:
        """The scores one answer gives (its label's probability), for score distributions."""
        return label_scores(answer)

    @staticmethod
    def how(item: EncodedItem) -> dict[str, Any]:
        """How the input was read, said in every answer (never silently truncated)."""
        return {"windows": item.windows, "strategy": item.strategy, **item.info}

    def predictions(
        self, task: TaskSpec, items: Sequence[EncodedItem], logits: Sequence[torch.Tensor], readout: Readout = IDENTITY
    ) -> list:
        """One label per item (sequence, pair) or one tag list per item (token); ``logits``: per item."""
        return readout.labels(task, self.probabilities(logits, readout))

    @staticmethod
    def probabilities(logits: Sequence[torch.Tensor], readout: Readout = IDENTITY) -> np.ndarray:
        """[n, L] calibrated class probabilities, as the service answers them."""
        return readout.probabilities(torch.stack([lg.float() for lg in logits]))

    # -- scoring ------------------------------------------------------------------------
    def metrics(self, task: TaskSpec, gold, pred, scores=None) -> dict[str, float]:
        raise NotImplementedError

    def score(
        self,
        task: TaskSpec,
        gold: list,
        items: Sequence[EncodedItem],
        logits: Sequence[torch.Tensor],
        readout: Readout = IDENTITY,
    ) -> tuple[dict[str, float], list]:
        """Metrics of the items' logits (one tensor per item) against gold labels, and the predictions."""
        pred = self.predictions(task, items, logits, readout)
        return self.metrics(task, gold, pred), pred

    def label_counts(self, gold: list) -> dict[str, int]:
        """What a split holds: examples per label (token tasks: entities per type)."""
        counts: dict[str, int] = {}
        for label in gold:
            counts[str(label)] = counts.get(str(label), 0) + 1
        return dict(sorted(counts.items()))

    def resampling(self, task: TaskSpec, gold: list, pred: list, scores: np.ndarray | None = None):
        """``metrics(index)``: the metrics of the examples at ``index`` (repeats allowed), what a
        bootstrap calls a thousand times: :meth:`figures` of the label ids taken once."""
        from ..metrics import label_ids

        g, p = label_ids(task, gold), label_ids(task, pred)
        return lambda index: self.figures(task, g[index], p[index], None if scores is None else scores[index])

    def figures(self, task: TaskSpec, g: np.ndarray, p: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
        """:meth:`metrics` from label ids, computed from counts (:mod:`..resampled`)."""
        raise NotImplementedError

    # -- benchmarks -------------------------------------------------------------------------
    def placeholder_row(self, ids: list[int]) -> EncodedRow:
        """A row of given token ids shaped for this kind's head (speed benchmarks)."""
        return EncodedRow(ids, self.kind, n_words=len(ids) - 2)

    def pipeline_input(self, item: Any) -> tuple[str, dict[str, Any]]:
        """A request item as a transformers ``pipeline`` call takes it: (text, call options)."""
        return item, {"truncation": True, "max_length": 128}


def count_before_reading(encoder: Encoder, text: str, budget: Budget) -> None:
    """Spend a note's words, and check its tokens when it is long enough to pass the token cap,
    before any word is built: an over-long note costs little. A note that might be refused is
    counted in pieces with ``budget.pause`` between them."""
    pause = budget.pause if budget.might_refuse(len(text)) else None
    budget.spend(words=count_words(text, budget.words_left, pause))
    if budget.could_pass(len(text)):
        budget.check(tokens=encoder.count_tokens(text, budget.tokens_left, pause))

"""From raw inputs to answers through one resident adapter, and back to text.

The service, evaluation and smoke checks all turn logits into labels, tags and
entity spans here, so every consumer reads model output the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .encoding import EncodedRow, Encoder, split_words
from .examples import Span
from .tasks import TaskKind, TaskSpec


@dataclass
class Entity:
    text: str
    type: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "type": self.type, "start": self.start, "end": self.end,
                "score": round(self.score, 6)}


def softmax(logits: torch.Tensor) -> np.ndarray:
    """Probabilities over the last axis, in numpy: decoding runs on the server's request thread
    for one small tensor at a time, where a torch op's dispatch costs more than the arithmetic."""
    values = logits.detach().float().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    values = values.astype(np.float64) - values.max(axis=-1, keepdims=True)
    exp = np.exp(values)
    return exp / exp.sum(axis=-1, keepdims=True)


def label_output(task: TaskSpec, logits: torch.Tensor) -> dict[str, Any]:
    """Sequence and pair tasks: the best label and every label's probability."""
    probs = softmax(logits).tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"label": task.labels[best], "probabilities": dict(zip(task.labels, probs))}


def word_tags(task: TaskSpec, logits: torch.Tensor, n_words: int,
              word_index: list[int] | None = None) -> tuple[list[str], list[float]]:
    """Token tasks: one tag and its probability per word (words cut by truncation, or
    without any token, get 'O'). ``word_index``: the word of each logits row (default: in order)."""
    probs = softmax(logits)
    index = probs.argmax(axis=-1)
    score = probs[np.arange(len(index)), index]
    tags, scores = ["O"] * n_words, [1.0] * n_words
    for word, tag, value in zip(word_index or range(n_words), index.tolist(), score.tolist()):
        tags[word], scores[word] = task.labels[tag], value
    return tags, scores


def bio_entities(text: str, spans: list[Span], tags: list[str], scores: list[float]) -> list[Entity]:
    """Group BIO tags into entities with character offsets (an I- without a B- starts one)."""
    entities: list[Entity] = []
    current: list[int] = []
    current_type = None

    def close() -> None:
        if current:
            start, end = spans[current[0]].start, spans[current[-1]].end
            score = sum(scores[i] for i in current) / len(current)
            entities.append(Entity(text[start:end], current_type, start, end, score))

    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and current and kind == current_type:
            current.append(i)
            continue
        close()
        current, current_type = ([i], kind) if prefix in ("B", "I") else ([], None)
    close()
    return entities


class Predictor:
    """Answers raw requests for one adapter slot of a MultiAdapterModel."""

    def __init__(self, model, name: str, truncate: bool = True, max_length: int | None = None) -> None:
        self.model = model
        self.slot = model.slots[name]
        self.name = name
        trained = self.slot.encoder
        self.encoder = Encoder(trained.tokenizer, trained.task, max_length or trained.max_length, truncate)

    @property
    def task(self) -> TaskSpec:
        return self.slot.task

    def encode(self, item: Any) -> tuple[EncodedRow, Any]:
        """Encode a text (sequence, token) or a {text, head, tail} item (pair); return the row and context."""
        enc = self.encoder
        kind = self.task.kind
        if kind is TaskKind.sequence:
            return enc.encode_text(item), None
        if kind is TaskKind.token:
            words = split_words(item)
            if not words:
                raise ValueError("the text has no words")
            return enc.encode_words([w for w, _ in words]), (item, [s for _, s in words])
        head, tail = _span(item["head"]), _span(item["tail"])
        return enc.encode_pair(item["text"], head, tail), None

    def decode(self, row: EncodedRow, logits: torch.Tensor, context: Any) -> dict[str, Any]:
        if self.task.kind is TaskKind.token:
            text, spans = context
            if row.word_index is not None:  # words without a token (dropped characters) do not split entities
                spans = [spans[w] for w in row.word_index]
            tags, scores = word_tags(self.task, logits, len(spans))
            out = {"entities": [e.as_dict() for e in bio_entities(text, spans, tags, scores)]}
        else:
            out = label_output(self.task, logits)
        if row.truncated:
            out["truncated"] = True
        return out

    @torch.inference_mode()
    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        encoded = [self.encode(item) for item in items]
        rows = [row for row, _ in encoded]
        logits = self.model(rows, [self.name] * len(rows))
        return [self.decode(row, out, ctx) for (row, ctx), out in zip(encoded, logits)]


def expectation(answer: dict[str, Any]) -> dict[str, Any]:
    """What a smoke check compares: the label, or each entity's text, type and offsets."""
    if "label" in answer:
        return {"label": answer["label"]}
    return {"entities": [{k: e[k] for k in ("text", "type", "start", "end")} for e in answer["entities"]]}


def _span(value: Any) -> Span:
    if isinstance(value, Span):
        return value
    if isinstance(value, dict):
        return Span(int(value["start"]), int(value["end"]))
    start, end = value
    return Span(int(start), int(end))

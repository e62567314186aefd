"""Logits to answers: probabilities, labels, word tags and entity spans.

Every consumer (the service, evaluation, smoke checks, benchmarks) reads model output
through these functions, called by the task kinds' strategies (:mod:`.kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .examples import Span
from .readout import IDENTITY, Readout
from .tasks import TaskSpec


@dataclass
class Entity:
    text: str
    type: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
        }


def softmax(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, in numpy: decoding runs on the server's request thread
    for one small tensor at a time, where a torch op's dispatch costs more than the arithmetic."""
    values = logits.detach().float().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    values = values.astype(np.float64) - values.max(axis=-1, keepdims=True)
    exp = np.exp(values)
    return exp / exp.sum(axis=-1, keepdims=True)


def label_output(task: TaskSpec, logits: torch.Tensor, readout: Readout = IDENTITY) -> dict[str, Any]:
    """Sequence and pair tasks: the label (by the adapter's operating point when it has one, else
    the most probable) and every label's calibrated probability."""
    probs = readout.probabilities(logits)
    (label,) = readout.labels(task, probs[None])
    return {"label": label, "probabilities": dict(zip(task.labels, probs.tolist()))}


def word_tags(
    task: TaskSpec, logits: torch.Tensor, n_words: int, word_index: list[int] | None = None
) -> tuple[list[str], list[float]]:
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
    current_type = ""

    def close() -> None:
        if current:
            start, end = spans[current[0]].start, spans[current[-1]].end
            score = sum(scores[i] for i in current) / len(current)
            entities.append(Entity(text[start:end], current_type, start, end, score))

    for i, tag in enumerate(tags):
        prefix, _, entity_type = tag.partition("-")
        if prefix == "I" and current and entity_type == current_type:
            current.append(i)
            continue
        close()
        current, current_type = ([i], entity_type) if prefix in ("B", "I") else ([], "")
    close()
    return entities


def expectation(answer: dict[str, Any]) -> dict[str, Any]:
    """What a smoke check compares: the label, or each entity's text, type and offsets."""
    if "label" in answer:
        return {"label": answer["label"]}
    return {"entities": [{k: e[k] for k in ("text", "type", "start", "end")} for e in answer["entities"]]}

"""Score a resident adapter on labelled examples, the way the paper reports it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from adapters.encoding import EncodedRow
from adapters.examples import Example, PairExample
from adapters.predict import Predictor, expectation, word_tags
from adapters.tasks import TaskKind

from .metrics import compute_metrics


@dataclass
class EvalResult:
    metrics: dict[str, float]
    n: int
    seconds: float
    predictions: list = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


def length_batches(rows: list[EncodedRow], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length, so little compute goes to padding."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def predict_logits(model, name: str, rows: list[EncodedRow], batch_size: int = 64) -> list[torch.Tensor]:
    """``model``: a MultiAdapterModel, or anything with its ``model(rows, names)`` call (an ONNX model)."""
    module = isinstance(model, torch.nn.Module)
    was_training = module and model.training
    if module:
        model.eval()
    out: list[torch.Tensor | None] = [None] * len(rows)
    for index in length_batches(rows, batch_size):
        for i, logits in zip(index, model([rows[i] for i in index], [name] * len(index))):
            out[i] = logits.float().cpu()
    if module:
        model.train(was_training)
    return out


def evaluate(model, name: str, examples: list[Example], batch_size: int = 64,
             rows: list[EncodedRow] | None = None) -> EvalResult:
    """Metrics of adapter ``name`` on ``examples`` (rows may be passed pre-encoded)."""
    task = model.slots[name].task
    encoder = model.slots[name].encoder
    start = time.perf_counter()
    rows = rows if rows is not None else [encoder.encode(e) for e in examples]
    logits = predict_logits(model, name, rows, batch_size)
    seconds = time.perf_counter() - start
    if task.kind is TaskKind.token:
        gold = [e.tags for e in examples]  # type: ignore[union-attr]
        pred = [word_tags(task, lg, row.n_words, row.word_index)[0] for lg, row in zip(logits, rows)]
        metrics = compute_metrics(task, gold, pred)
    else:
        probs = torch.stack([torch.softmax(lg, -1) for lg in logits]).numpy()
        gold = [e.label for e in examples]
        pred = [task.labels[i] for i in probs.argmax(1)]
        metrics = compute_metrics(task, gold, pred, probs if task.kind is TaskKind.sequence else None)
    return EvalResult(metrics=metrics, n=len(examples), seconds=seconds, predictions=pred)


def agreement(predictions: list, reference: list) -> float:
    """Share of equal labels: one per example, or one per word for token tasks (tag lists)."""
    pairs = [(p, r) for ps, rs in zip(predictions, reference, strict=True)
             for p, r in (zip(ps, rs, strict=True) if isinstance(ps, list) else [(ps, rs)])]
    return sum(p == r for p, r in pairs) / len(pairs) if pairs else float("nan")


def smoke_examples(model, name: str, examples: list[Example], n: int = 4) -> list[dict]:
    """A few raw inputs with the answers the service's predictor gives for them now,
    kept in the artifact so activation can check the adapter still answers the same."""
    items = []
    for example in examples[:n]:
        if isinstance(example, PairExample):
            items.append({"text": example.text, "head": {"start": example.head.start, "end": example.head.end},
                          "tail": {"start": example.tail.start, "end": example.tail.end}})
        else:
            items.append(example.text)
    answers = Predictor(model, name).predict(items)
    return [{"input": item, "expected": expectation(answer)} for item, answer in zip(items, answers)]

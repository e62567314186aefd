"""Score a resident adapter on labelled examples, the way the paper reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from bedside.adapters.decoding import expectation
from bedside.adapters.encoding import EncodedRow
from bedside.adapters.examples import Example
from bedside.adapters.interface import predict_rows
from bedside.adapters.kinds import EncodedItem
from bedside.adapters.predict import Predictor
from bedside.adapters.readout import IDENTITY, Readout

from .bootstrap import intervals


@dataclass
class EvalResult:
    metrics: dict[str, float]
    n: int
    seconds: float
    predictions: list = field(default_factory=list, repr=False)
    gold: list = field(default_factory=list, repr=False)
    logits: list[torch.Tensor] = field(default_factory=list, repr=False)  # one per example (its rows pooled)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def scores(self, readout: Readout = IDENTITY) -> np.ndarray | None:
        """[n, L] calibrated probabilities (label tasks; None for token tasks)."""
        if not self.logits or self.logits[0].dim() != 1:
            return None
        return readout.probabilities(torch.stack([lg.float() for lg in self.logits]))

    @property
    def throughput(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


def length_batches(rows: list[EncodedRow], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length, so little compute goes to padding."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def predict_logits(model, name: str, rows: list[EncodedRow], batch_size: int = 64) -> list[torch.Tensor]:
    """``model``: any AdapterModel (the torch composition, an ONNX model)."""
    module = isinstance(model, torch.nn.Module)
    was_training = module and model.training
    if module:
        model.eval()
    out: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    for index in length_batches(rows, batch_size):
        for i, logits in zip(index, predict_rows(model, [rows[i] for i in index], [name] * len(index))):
            out[i] = logits.float().cpu()
    if module:
        model.train(was_training)
    return out


def evaluate(
    model,
    name: str,
    examples: list[Example],
    batch_size: int = 64,
    items: list[EncodedItem] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> EvalResult:
    """Metrics of adapter ``name`` on ``examples`` (their encoded items may be passed in), read
    through the adapter's readout; with ``bootstrap`` resamples, their 95 % intervals too."""
    slot = model.slots[name]
    start = time.perf_counter()
    items = items if items is not None else [slot.kind.encode_example(slot.encoder, e) for e in examples]
    rows = [row for item in items for row in item.rows]
    logits = predict_logits(model, name, rows, batch_size)
    per_item, at = [], 0
    for item in items:
        per_item.append(slot.kind.logits(item, logits[at : at + item.windows]))
        at += item.windows
    seconds = time.perf_counter() - start
    gold = [slot.kind.gold(e) for e in examples]
    metrics, pred = slot.kind.score(slot.task, gold, items, per_item, slot.readout)
    result = EvalResult(metrics, len(examples), seconds, pred, gold, per_item)
    if bootstrap:
        result.intervals = intervals(slot.task, gold, pred, result.scores(slot.readout), bootstrap, seed)
    return result


def agreement(predictions: list, reference: list) -> float:
    """Share of equal labels: one per example, or one per word for token tasks (tag lists)."""
    pairs = [
        (p, r)
        for ps, rs in zip(predictions, reference, strict=True)
        for p, r in (zip(ps, rs, strict=True) if isinstance(ps, list) else [(ps, rs)])
    ]
    return sum(p == r for p, r in pairs) / len(pairs) if pairs else float("nan")


def smoke_examples(model, name: str, examples: list[Example], n: int = 4) -> list[dict]:
    """A few raw inputs with the answers the service's predictor gives for them now,
    kept in the artifact so activation can check the adapter still answers the same."""
    kind = model.slots[name].kind
    items = [kind.request_item(example) for example in examples[:n]]
    answers = Predictor(model, name).predict(items)
    return [{"input": item, "expected": expectation(answer)} for item, answer in zip(items, answers)]

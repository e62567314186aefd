"""How an adapter's logits become its answer: probabilities scaled by a fitted temperature (or
per-label weights and biases: vector scaling) and, for a binary task, the label by a chosen
operating point (a threshold on the positive class).

Fitted at training on the validation split (:mod:`bedside.training.calibration`), stored in the
manifest, applied the same way wherever the adapter answers: the service (torch and ONNX),
``bedside evaluate`` and the smoke check. An artifact without one reads logits as before
(temperature 1, the most probable label).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from .tasks import TaskSpec


class OperatingPoint(BaseModel):
    """``label`` is ``positive`` when p(positive) ≥ ``threshold``, else the other label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(description="how the threshold was chosen: f1, youden, sensitivity:X or ppv:X")
    positive: str = Field(description="the label the threshold is for")
    threshold: float = Field(ge=0, le=1, description="on the calibrated probability of the positive label")
    validation: dict[str, float] = Field(
        default_factory=dict, description="sensitivity, specificity, ppv and f1 at the threshold on validation"
    )


class Readout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(1.0, gt=0, le=100, description="logits are divided by it before the softmax")
    # Vector scaling: each label's logit times its weight plus its bias (instead of the temperature).
    weights: tuple[float, ...] | None = Field(None, description="vector scaling: per-label weight (> 0) on the logits")
    biases: tuple[float, ...] | None = Field(None, description="vector scaling: per-label bias added after the weight")
    operating_point: OperatingPoint | None = None

    @property
    def method(self) -> str:
        return "vector" if self.weights is not None else "temperature" if self.temperature != 1.0 else "none"

    def check(self, task: TaskSpec) -> None:
        point = self.operating_point
        if point is not None and (task.num_labels != 2 or point.positive not in task.labels):
            raise ValueError(f"an operating point needs a binary task with the label {point.positive!r}")
        if (self.weights is None) != (self.biases is None):
            raise ValueError("vector scaling needs both weights and biases")
        if self.weights is not None:
            if len(self.weights) != task.num_labels or len(self.biases or ()) != task.num_labels:
                raise ValueError(f"vector scaling needs one weight and one bias per label ({task.num_labels})")
            if self.temperature != 1.0 or min(self.weights) <= 0:
                raise ValueError("vector scaling takes positive weights and no temperature")

    def probabilities(self, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """Calibrated class probabilities of ``[..., L]`` logits (float64; one function for serving,
        evaluation and fitting)."""
        from .decoding import softmax

        values = logits.detach().float().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
        values = values.astype(np.float64)
        if self.weights is not None:
            return softmax(values * np.asarray(self.weights) + np.asarray(self.biases))
        return softmax(values / self.temperature)

    def labels(self, task: TaskSpec, probs: np.ndarray | Sequence[Sequence[float]]) -> list[str]:
        """One label per row of ``[n, L]`` calibrated probabilities."""
        probs = np.asarray(probs, dtype=np.float64).reshape(-1, task.num_labels)
        point = self.operating_point
        if point is None:
            return [task.labels[int(i)] for i in probs.argmax(1)]
        pos = task.label_id(point.positive)
        other = task.labels[1 - pos]
        return [point.positive if p[pos] >= point.threshold else other for p in probs]


IDENTITY = Readout()

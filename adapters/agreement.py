"""How two versions' answers to the same input agree: what a shadow comparison counts.

Only counts leave this module (never text): labels agreeing or not and the mean absolute
difference of the label probabilities (sequence and pair tasks), entities found by both versions
with the same span and type, or by one only (token tasks), and the candidate's answered scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Agreement:
    items: int = 0  # label answers compared
    agree: int = 0
    probability_differences: list[float] = field(default_factory=list)  # one per label answer
    both: int = 0  # entities found by both (same start, end and type)
    active_only: int = 0
    candidate_only: int = 0
    candidate_scores: list[float] = field(default_factory=list)


def label_agreement(active: dict[str, Any], candidate: dict[str, Any]) -> Agreement:
    """One sequence or pair answer of each version."""
    pa, pc = active.get("probabilities") or {}, candidate.get("probabilities") or {}
    diffs = [abs(float(pa[k]) - float(pc.get(k, 0.0))) for k in pa]
    return Agreement(
        items=1,
        agree=int(active.get("label") == candidate.get("label")),
        probability_differences=[sum(diffs) / len(diffs)] if diffs else [],
        candidate_scores=label_scores(candidate),
    )


def entity_agreement(active: dict[str, Any], candidate: dict[str, Any]) -> Agreement:
    """One token-task answer of each version: entities matched by exact span and type."""

    def keys(answer: dict[str, Any]) -> set[tuple]:
        return {(e["start"], e["end"], e["type"]) for e in answer.get("entities") or []}

    a, c = keys(active), keys(candidate)
    return Agreement(
        both=len(a & c), active_only=len(a - c), candidate_only=len(c - a), candidate_scores=entity_scores(candidate)
    )


def label_scores(answer: dict[str, Any]) -> list[float]:
    """The answered label's probability."""
    probs = answer.get("probabilities") or {}
    label = answer.get("label")
    return [float(probs[label])] if label in probs else []


def entity_scores(answer: dict[str, Any]) -> list[float]:
    return [float(e["score"]) for e in answer.get("entities") or [] if "score" in e]

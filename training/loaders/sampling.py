"""Deterministic few-shot sampling and stratified splits over loaded examples."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar, cast, overload

from bedside.adapters.examples import Example, PairExample, TextExample, TokenExample

E = TypeVar("E", bound=TextExample | TokenExample | PairExample)


def entity_types(tags: Sequence[str]) -> set[str]:
    """Entity types named by BIO tags (``B-Disease`` -> ``Disease``)."""
    return {tag[2:] for tag in tags if tag != "O" and len(tag) > 2 and tag[1] == "-"}


def stratum(example: Example) -> Hashable:
    """What a split is stratified by: the label, or for token examples the
    sorted tuple of entity types present in the sentence."""
    if isinstance(example, TokenExample):
        if example.tags is None:
            raise ValueError(f"example {example.id!r} has no tags")
        return tuple(sorted(entity_types(example.tags)))
    if example.label is None:
        raise ValueError(f"example {example.id!r} has no label")
    return example.label


@overload
def stratified_split(
    examples: Sequence[E], fractions: Mapping[str, float], seed: int = 42, key: Callable[[E], Hashable] | None = None
) -> dict[str, list[E]]: ...
@overload
def stratified_split(
    examples: Sequence[E], fractions: Sequence[float], seed: int = 42, key: Callable[[E], Hashable] | None = None
) -> list[list[E]]: ...
def stratified_split(examples, fractions, seed=42, key=None):
    """Split ``examples`` into parts of the given fractions, keeping the class
    mix of every part close to the whole (within one example per class).

    ``fractions`` is ``{"train": 0.8, "val": 0.1, "test": 0.1}`` (returns a
    dict) or ``[0.9, 0.1]`` (returns a list); fractions must sum to 1. The
    classes come from ``key`` (default :func:`stratum`: the label, or the set
    of entity types of a token example). The result is the same for the same
    seed; each part keeps the input order.
    """
    names = list(fractions) if isinstance(fractions, Mapping) else None
    weights = [float(f) for f in (fractions.values() if names is not None else fractions)]
    if not weights or any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {weights}")
    key = key or stratum

    groups: dict[Hashable, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(key(example), []).append(index)
    rng = random.Random(seed)
    order: list[int] = []
    for group_key in sorted(groups, key=repr):
        members = groups[group_key]
        rng.shuffle(members)
        order.extend(members)

    # Deal the examples, class after class, to the part furthest behind its share;
    # every part's running count stays within one of its share, overall and per class.
    assigned = [0] * len(weights)
    parts: list[list[int]] = [[] for _ in weights]
    for position, index in enumerate(order, 1):
        deficits = [position * w - n for w, n in zip(weights, assigned)]
        best = max(range(len(weights)), key=lambda j: (deficits[j], -j))
        assigned[best] += 1
        parts[best].append(index)
    result = [[examples[i] for i in sorted(part)] for part in parts]
    return dict(zip(names, result)) if names is not None else result


def few_shot(examples: Sequence[E], n_per_class: int, seed: int = 42) -> list[E]:
    """Pick ``n_per_class`` examples per class, deterministically for a seed.

    Sequence and pair examples: per label (all of a label's examples when it
    has fewer). Token examples: per entity type present, greedily: for each
    type (sorted) add random sentences containing it until ``n_per_class``
    chosen sentences contain the type (sentences chosen for an earlier type
    count too; sentences without entities are never chosen). The result keeps
    the input order.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    kinds = {type(example) for example in examples}
    if len(kinds) > 1:
        raise ValueError(f"mixed example types: {sorted(k.__name__ for k in kinds)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()

    if kinds == {TokenExample}:
        types_of = [set(cast(tuple, stratum(example))) for example in examples]  # token strata are type tuples
        count: dict[str, int] = {}
        for entity_type in sorted(set().union(*types_of)):
            for index in order:
                if count.get(entity_type, 0) >= n_per_class:
                    break
                if index in chosen or entity_type not in types_of[index]:
                    continue
                chosen.add(index)
                for t in types_of[index]:
                    count[t] = count.get(t, 0) + 1
    else:
        taken: dict[Hashable, int] = {}
        for index in order:
            label = stratum(examples[index])
            if taken.get(label, 0) < n_per_class:
                taken[label] = taken.get(label, 0) + 1
                chosen.add(index)
    return [examples[i] for i in sorted(chosen)]

"""Task kinds as strategies: everything that differs between sequence, token and pair tasks.

One object per kind owns how an example or a request (a note of any length, a pair item)
becomes model rows, when rows have no content, how their logits become an answer, how
predictions are scored, which head it uses, and (pair tasks) which entity pairs are
candidates. The rest of bedside is kind-neutral: it asks :func:`strategy` (as PEFT's
``LoraVariant`` classes replace branches in ``forward``). A new kind is a module here, a
:class:`~..tasks.TaskKind` member and an entry in :data:`STRATEGIES`.
"""

from __future__ import annotations

from ..tasks import TaskKind
from .base import EncodedItem, KindStrategy
from .pair import PairKind, as_span, local_window, note_candidates, note_pairs, pair_items
from .sequence import SequenceKind
from .token import TokenKind

PAIR = PairKind()
STRATEGIES: dict[TaskKind, KindStrategy] = {s.kind: s for s in (SequenceKind(), TokenKind(), PAIR)}

__all__ = [
    "PAIR",
    "STRATEGIES",
    "EncodedItem",
    "KindStrategy",
    "as_span",
    "local_window",
    "note_candidates",
    "note_pairs",
    "pair_items",
    "strategy",
]


def strategy(kind: TaskKind | str) -> KindStrategy:
    """The strategy of a task kind (or of its name)."""
    return STRATEGIES[TaskKind(kind)]

"""One forward's rows and the adapter each belongs to, worked out once and passed down.

:func:`route` orders a forward's rows so that each adapter's rows are contiguous and
records the runs (which slot owns which slice). The batcher computes it once per forward;
banked LoRA layers, PEFT's per-row names, the ONNX runners and the heads all read the
same runs, so nothing regroups the rows again (as lorax passes ``AdapterBatchMetadata``
into ``forward``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .encoding import EncodedRow

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """Rows ``start:stop`` of a batch, all through adapter ``slot``."""

    slot: str
    start: int
    stop: int

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Batch:
    """Rows in forward order (each adapter's rows contiguous) and their runs.

    ``order[k]`` is the caller's index of forward row ``k``: :meth:`restore` puts
    per-row outputs back into the caller's order.
    """

    rows: tuple[EncodedRow, ...]
    runs: tuple[Run, ...]
    order: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def slots(self) -> list[str]:
        """The slot of every row, in forward order (PEFT's ``adapter_names``)."""
        return [run.slot for run in self.runs for _ in range(len(run))]

    def run_rows(self) -> Iterator[tuple[Run, tuple[EncodedRow, ...]]]:
        for run in self.runs:
            yield run, self.rows[run.rows]

    def restore(self, outputs: Sequence[T]) -> list[T]:
        """Per-row outputs in forward order -> the caller's order."""
        if len(outputs) != len(self.order):
            raise ValueError(f"{len(outputs)} outputs for {len(self.order)} rows")
        restored: list = [None] * len(outputs)
        for position, index in enumerate(self.order):
            restored[index] = outputs[position]
        return restored


def route(rows: Sequence[EncodedRow], slots: Sequence[str]) -> Batch:
    """Order ``rows`` by adapter (first appearance first, stable within one) and cut the runs."""
    if len(rows) != len(slots):
        raise ValueError("one adapter name per row")
    first: dict[str, int] = {}
    for slot in slots:
        first.setdefault(slot, len(first))
    order = sorted(range(len(rows)), key=lambda i: first[slots[i]])
    runs: list[Run] = []
    for position, i in enumerate(order):
        if runs and runs[-1].slot == slots[i]:
            runs[-1] = Run(slots[i], runs[-1].start, position + 1)
        else:
            runs.append(Run(slots[i], position, position + 1))
    return Batch(tuple(rows[i] for i in order), tuple(runs), tuple(order))

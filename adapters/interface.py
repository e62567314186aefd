"""What predicts, declared once: a resident adapter (:class:`Slot`), a model that runs routed
batches (:class:`AdapterModel`), and what the service serves on (:class:`InferenceBackend`).

The torch composition (:class:`~.multi.MultiAdapterModel`) and the ONNX runners
(:mod:`.onnx.session`, :mod:`.onnx.shared`) are AdapterModels; the service's torch and
ONNX backends are InferenceBackends (as text-embeddings-inference's ``Backend`` trait).
A new backend implements these few methods and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from .batch import Batch, route
from .encoding import EncodedRow, Encoder
from .heads import Head
from .kinds import KindStrategy, strategy
from .readout import IDENTITY, Readout
from .tasks import TaskSpec


@dataclass
class Slot:
    """A resident adapter: its task, tokenisation and head, and what its model needs to run it."""

    name: str
    task: TaskSpec
    encoder: Encoder
    head: Head | None = None  # None: the head is inside the runner's graph (merged ONNX)
    peft_name: str | None = None  # torch: the PEFT/bank adapter id (None: a head on the bare base)
    head_key: str = ""  # torch: key in MultiAdapterModel.heads
    runner: Any = None  # merged ONNX: the session that answers end to end
    lora: dict | None = None  # shared ONNX: LoRA weights per target layer, padded to ``rank``
    rank: int = 0
    readout: Readout = IDENTITY  # how its logits become answers (temperature, operating point)

    @property
    def kind(self) -> KindStrategy:
        return strategy(self.task.kind)

    def torch_head(self) -> Head:
        """The head as a torch module (every slot but a merged ONNX graph's has one)."""
        if self.head is None:
            raise TypeError(f"adapter {self.name!r} has its head inside its graph")
        return self.head


@runtime_checkable
class AdapterModel(Protocol):
    """Resident adapters by slot name, and one forward per routed batch."""

    @property
    def slots(self) -> Mapping[str, Slot]: ...

    def run(self, batch: Batch) -> list[torch.Tensor]:
        """Logits per row in batch order: [L], or [words kept, L] for token rows."""
        ...


@runtime_checkable
class InferenceBackend(AdapterModel, Protocol):
    """An AdapterModel the service can load versions into while it serves."""

    name: str
    checks_on_served_model: bool  # the registry's activation check runs on this model
    served_check_is_exact: bool  # False (quantised): a failed check there is settled by an fp32 reference

    @property
    def label(self) -> str:
        """What answered, as provenance reports it (e.g. ``onnx:merged:int8:CPUExecutionProvider``)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def prepare(self, path: Path, artifact: Any) -> Any:
        """Slow work that must not block serving (an ONNX export); runs outside the model lock."""
        ...

    def attach(self, prepared: Any, slot: str) -> None:
        """Make the prepared version callable as ``slot`` (under the model lock)."""
        ...

    def remove(self, slot: str) -> None: ...


def predict_rows(model: AdapterModel, rows: Sequence[EncodedRow], slots: Sequence[str]) -> list[torch.Tensor]:
    """Route rows of any adapters into one batch, run it, and return logits in the rows' order."""
    batch = route(rows, slots)
    return batch.restore(model.run(batch))


def head_logits(
    slots: Mapping[str, Slot], batch: Batch, hidden: torch.Tensor, mask: torch.Tensor
) -> list[torch.Tensor]:
    """Each run of the batch through its adapter's head: logits per row, in batch order."""
    outputs: list[torch.Tensor] = []
    for run, rows in batch.run_rows():
        head = slots[run.slot].torch_head()
        outputs.extend(head.row_logits(head.run(hidden[run.rows], mask[run.rows], rows), rows))
    return outputs

"""onnxruntime sessions with an explicit, checked provider, and a runner over EncodedRows.

A session is opened with an explicit provider list and its first provider is checked:
onnxruntime otherwise falls back to CPU silently (for example when the CUDA libraries
do not load), and a GPU service would then quietly run at CPU speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..batch import Batch
from ..encoding import EncodedRow, Encoder, pad_rows
from ..interface import Slot, predict_rows
from ..kinds import strategy
from ..readout import IDENTITY, Readout
from ..tasks import TaskKind, TaskSpec

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class ProviderError(RuntimeError):
    """The asked-for execution provider is not the one the session runs on."""


def default_provider() -> str:
    """CUDA when torch sees a GPU and this onnxruntime build has the CUDA provider, else CPU."""
    import onnxruntime as ort

    if torch.cuda.is_available() and CUDA in ort.get_available_providers():
        return CUDA
    return CPU


def provider_for(device: str) -> tuple[str, dict | None]:
    """The execution provider (and its options) for a service device setting."""
    if device == "auto":
        return default_provider(), None
    if device == "cpu":
        return CPU, None
    if device.startswith("cuda"):
        _, _, index = device.partition(":")
        return CUDA, {"device_id": int(index or 0)}
    raise ValueError(f"device {device!r} has no ONNX Runtime provider (cpu, cuda, cuda:N)")


def variant_for(setting: str, provider: str) -> str:
    """``auto``: int8 on CPU (dynamic quantisation), fp16 on CUDA."""
    if setting == "auto":
        return "fp16" if provider == CUDA else "int8"
    return setting


def open_session(
    path: str | Path, provider: str | None = None, threads: int | None = None, provider_options: dict | None = None
):
    """An InferenceSession on exactly ``provider`` (default: :func:`default_provider`).
    ``provider_options``: e.g. ``{"device_id": 1}`` for CUDA.

    Raises :class:`ProviderError` when this onnxruntime does not offer the provider, or
    when the session came up on another one (a silent fall-back)."""
    import onnxruntime as ort

    want = provider or default_provider()
    available = ort.get_available_providers()
    if want not in available:
        raise ProviderError(
            f"execution provider {want!r} is not available in this onnxruntime (available: {', '.join(available)})"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: a failed provider is reported by the check below
    # Idle pool threads sleep instead of spinning: a server holds one session per adapter version
    # and its HTTP thread needs the same cores (measured in docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    first = (want, provider_options) if provider_options else want
    providers = [first] if want == CPU else [first, CPU]  # CPU only for nodes the accelerator lacks
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ProviderError(f"could not open {path} on {want}: {exc}") from exc
    got = session.get_providers()
    if not got or got[0] != want:
        raise ProviderError(
            f"asked for {want} but the session runs on {got[0] if got else 'nothing'} "
            f"(onnxruntime fell back; is the {want} runtime installed and a device present?)"
        )
    return session


class OnnxRunner:
    """Runs one exported adapter graph on EncodedRows; logits per row as torch tensors."""

    def __init__(self, session, kind: TaskKind, pad_id: int = 0) -> None:
        self.session = session
        self.head = strategy(kind).head  # what the graph's extra inputs and outputs look like
        self.pad_id = pad_id
        self.inputs = [i.name for i in session.get_inputs()]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def feeds(self, rows: Sequence[EncodedRow]) -> dict[str, np.ndarray]:
        ids, mask = pad_rows(rows, self.pad_id)
        feeds = {"input_ids": ids, "attention_mask": mask}
        extra = self.head.extra(rows)
        if extra is not None:
            feeds.update(dict.fromkeys(self.head.extra_inputs, extra))
        return {k: v for k, v in feeds.items() if k in self.inputs}

    def __call__(self, rows: Sequence[EncodedRow]) -> list[torch.Tensor]:
        """[L] per row, or [words kept, L] for token rows (logits at ``row.word_starts``)."""
        if not rows:
            return []
        (logits,) = self.session.run(["logits"], self.feeds(rows))
        return self.head.row_logits(torch.from_numpy(logits), rows)


class OnnxModel:
    """Exported adapters as an :class:`~adapters.interface.AdapterModel`: each run of a routed
    batch goes through its adapter's own session (design A has one graph per adapter)."""

    def __init__(
        self, tokenizer, provider: str | None = None, threads: int | None = None, provider_options: dict | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.provider = provider
        self.threads = threads
        self.provider_options = provider_options
        self.slots: dict[str, Slot] = {}

    def open(
        self, name: str, exported, task: TaskSpec, max_length: int = 128, long_input=None, readout: Readout = IDENTITY
    ) -> Slot:
        """A session for ``exported`` (an :class:`~adapters.onnx.export.Exported`), not yet served."""
        session = open_session(exported.model_path, self.provider, self.threads, self.provider_options)
        runner = OnnxRunner(session, task.kind, exported.meta.get("pad_id", self.tokenizer.pad_token_id or 0))
        encoder = Encoder(self.tokenizer, task, max_length=max_length, long_input=long_input)
        return Slot(name, task, encoder, runner=runner, readout=readout)

    def insert(self, slot: Slot) -> None:
        if slot.name in self.slots:
            raise KeyError(f"adapter {slot.name!r} is already loaded")
        self.slots[slot.name] = slot

    def add(
        self, name: str, exported, task: TaskSpec, max_length: int = 128, long_input=None, readout: Readout = IDENTITY
    ) -> Slot:
        """Open ``exported`` and serve it as adapter ``name``."""
        if name in self.slots:
            raise KeyError(f"adapter {name!r} is already loaded")
        slot = self.open(name, exported, task, max_length, long_input, readout)
        self.insert(slot)
        return slot

    def remove(self, name: str) -> None:
        del self.slots[name]

    def run(self, batch: Batch) -> list[torch.Tensor]:
        return [logits for run, rows in batch.run_rows() for logits in self.slots[run.slot].runner(rows)]

    def __call__(self, rows: Sequence[EncodedRow], names: Sequence[str]) -> list[torch.Tensor]:
        return predict_rows(self, rows, names)

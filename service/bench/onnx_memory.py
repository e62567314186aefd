"""Resident memory of ONNX Runtime sessions, each configuration in a fresh process.

A child notes its RSS after its imports (no model loaded), opens the given graphs, runs
one batch through each (so the arenas are counted), and reports the growth. Sessions of
one process share nothing, so four merged graphs hold four encoders; the shared graph
holds one, plus each adapter's stacked LoRA inputs.

Run as ``python -m bedside.service.bench.onnx_memory '{"graphs": [...], ...}'``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RANK = 16


def feeds_for(session, batch: int, length: int, adapters: int, vocab: int = 1000):
    """Inputs of every shape a graph asks for: tokens, a full mask, rows spread over
    ``adapters`` and zero LoRA weights of rank :data:`RANK`."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        name, dims = spec.name, spec.shape
        if name == "input_ids":
            feeds[name] = rng.integers(5, max(vocab, 6), (batch, length), dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones((batch, length), np.int64)
        elif name == "row_adapter":
            feeds[name] = np.arange(batch, dtype=np.int64) % adapters
        elif name.startswith("A_"):
            feeds[name] = np.zeros((adapters, int(dims[1]), RANK), np.float32)
        elif name.startswith("B_"):
            feeds[name] = np.zeros((adapters, RANK, int(dims[2])), np.float32)
        else:  # a head's extra input (marker positions): small valid indices
            shape = [batch] + [int(d) if isinstance(d, int) else 2 for d in dims[1:]]
            feeds[name] = np.ones(shape, np.int64)
    return feeds


def _child(spec: dict) -> dict:
    import onnxruntime as ort

    from .memory import rss_mb

    before = rss_mb()
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.get("threads", 2)
    sessions = [ort.InferenceSession(g, options, providers=["CPUExecutionProvider"]) for g in spec["graphs"]]
    for session in sessions:
        session.run(None, feeds_for(session, spec["batch"], spec["length"], spec["adapters"], spec["vocab"]))
    return {"rss_before_mb": before, "rss_after_mb": rss_mb(), "sessions": len(sessions)}


def resident_mb(graphs: list[Path], vocab: int, batch: int = 32, length: int = 128, adapters: int = 1) -> float:
    """RSS growth, in MB, of a fresh process that opens and runs ``graphs`` on token ids below ``vocab``."""
    spec = {"graphs": [str(g) for g in graphs], "batch": batch, "length": length, "adapters": adapters}
    spec["vocab"] = vocab
    done = subprocess.run(
        [sys.executable, "-m", "bedside.service.bench.onnx_memory", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["rss_after_mb"] - report["rss_before_mb"]


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))

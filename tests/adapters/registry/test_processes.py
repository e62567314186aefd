"""Crashes and concurrency across real processes (a SIGKILLed push; 20 racing activations)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bedside.adapters.registry import Registry

REPO = Path(__file__).resolve().parents[3]
ENV = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

# Pauses the push between its complete staged copy and the rename that publishes it.
PAUSED_PUSH = r"""
import os, pathlib, sys, time
root, src, marker = sys.argv[1:4]
real_rename = os.rename
def paused_rename(a, b):
    if "/.staging/" in str(a):
        pathlib.Path(marker).write_text(str(a))
        time.sleep(300)
    real_rename(a, b)
os.rename = paused_rename
from bedside.adapters.registry import Registry
Registry(root).push(src, actor="doomed")
"""

RACING_ACTIVATION = r"""
import os, pathlib, sys, time
root, task, version, actor, ready, go = sys.argv[1:7]
from bedside.adapters.registry import Registry
registry = Registry(root)
pathlib.Path(ready).touch()
while not os.path.exists(go):
    time.sleep(0.005)
registry.activate(task, version, actor)
"""


def wait_for(predicate, procs, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_push_killed_before_publishing_leaves_no_partial_version(tmp_path, artifact, served):
    root, marker = tmp_path / "store", tmp_path / "staged"
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_PUSH, str(root), str(artifact()), str(marker)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(marker.exists, [proc])
        staged = Path(marker.read_text())
        assert (staged / "artifact" / "manifest.json").is_file()  # everything copied, nothing published
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    registry = Registry(root, backbone=served)
    assert registry.list() == [] and registry.active("mortality") is None
    info = registry.push(artifact(), activate=True)  # the dead push's task lock is free again
    assert info.version == "v2"  # v1 was handed to the dead push: numbers are never reused
    assert not staged.exists()  # its staging went with the next command
    assert [v.version for v in registry.list()] == ["v2"] and registry.verify() == []
    assert [e.action for e in registry.audit_entries()] == ["push", "activate"]


def test_r25_20_concurrent_activations_across_two_tasks_from_processes(tmp_path, artifact, served):
    root = tmp_path / "store"
    registry = Registry(root, backbone=served)
    for task in ("mortality", "ner"):
        registry.push(artifact(task, seed=0))
        registry.push(artifact(task, seed=1))
    go = tmp_path / "go"
    jobs = [("mortality" if i % 2 else "ner", f"v{1 + (i // 2) % 2}", f"p{i}") for i in range(20)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACING_ACTIVATION,
                str(root),
                task,
                version,
                actor,
                str(tmp_path / f"ready-{actor}"),
                str(go),
            ],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for task, version, actor in jobs
    ]
    try:
        wait_for(lambda: all((tmp_path / f"ready-{a}").exists() for _, _, a in jobs), procs)
        go.touch()  # all at once
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 20, [err for _, err in results]
    lines = (root / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # whole lines only: no interleaving
    activations = [e for e in entries if e["action"] == "activate"]
    assert len(activations) == 20 and {e["outcome"] for e in activations} == {"ok"}
    assert sorted(e["actor"] for e in activations) == sorted(a for _, _, a in jobs)
    for task in ("mortality", "ner"):
        active = [v for v in registry.list(task) if v.active]
        assert len(active) == 1
        pointer = registry.backend.read_pointer(task)
        assert pointer["active"] in ("v1", "v2") and pointer["previous"] in ("v1", "v2")
    assert registry.verify() == []

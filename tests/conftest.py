"""Shared fixtures: a tiny random encoder built in code; no network, no model files."""

from __future__ import annotations

import os

from bedside import ENV_DEFAULTS

os.environ.update(ENV_DEFAULTS)  # forced, not defaults: the suite must never reach a hub

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny():
    from bedside.adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0)


@pytest.fixture()
def fresh_tiny():
    """A tiny backbone a test may modify (PEFT injects layers in place)."""
    from bedside.adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0)


@pytest.fixture(scope="session")
def served_folder(tmp_path_factory):
    """The tiny base saved as a model folder, as a server loads it."""
    from bedside.adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0).save(tmp_path_factory.mktemp("base") / "tiny")


CANARY_PREFIX = "PHI-CANARY"  # every canary the tests send starts with it


def pytest_sessionfinish(session, exitstatus):
    """After the whole suite: no canary in any server log or audit trail a test left behind (the
    tests check /metrics and response bodies as they go; this catches what a later test logged)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.config.option.collectonly:
        return
    root = factory.getbasetemp()
    found = [
        str(path.relative_to(root))
        for pattern in ("*.log", "audit.jsonl")
        for path in root.rglob(pattern)
        if path.is_file() and CANARY_PREFIX.encode() in path.read_bytes()
    ]
    if found:
        session.config.get_terminal_writer().line(f"PHI canary found after the suite in: {found}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

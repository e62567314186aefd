"""Registry fixtures: real tiny-backbone artifacts built once, copied per test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import edit_json, save_task_artifacts


@pytest.fixture(scope="session")
def served():
    """The served base (kept pristine: the default smoke deep-copies it)."""
    from bedside.adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Two trainings (seeds 0 and 1) of every preset task on the served base (a fresh copy each:
    PEFT injects layers into the encoder it trains)."""
    root = tmp_path_factory.mktemp("artifacts")
    return {seed: save_task_artifacts(root / f"seed{seed}", seed=seed) for seed in (0, 1)}


@pytest.fixture()
def artifact(built, tmp_path):
    """``artifact("ner", seed=1)``: a private, editable copy of a built artifact; ``variant=k`` renames
    it in the manifest, so its bytes differ (the registry stores identical bytes once)."""
    count = iter(range(1000))

    def copy(task: str = "mortality", seed: int = 0, variant: int = 0) -> Path:
        path = Path(shutil.copytree(built[seed][task], tmp_path / f"src-{task}-{seed}-{next(count)}"))
        if variant:
            manifest = json.loads((path / "manifest.json").read_text())
            edit_json(path / "manifest.json", name=f"{manifest['name']}-{variant}")
        return path

    return copy


@pytest.fixture()
def registry(tmp_path, served):
    from bedside.adapters.registry import Registry

    return Registry(tmp_path / "store", backbone=served)

"""Shared fixtures: a tiny random encoder built in code; no network, no model files."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny():
    from adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0)


@pytest.fixture()
def fresh_tiny():
    """A tiny backbone a test may modify (PEFT injects layers in place)."""
    from adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0)


@pytest.fixture(scope="session")
def served_folder(tmp_path_factory):
    """The tiny base saved as a model folder, as a server loads it."""
    from adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0).save(tmp_path_factory.mktemp("base") / "tiny")

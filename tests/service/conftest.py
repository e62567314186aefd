"""A served tiny base in a folder, a store with one active version per preset task,
and the service's ASGI app in process (no BentoML; the real server has its own tests)."""
from __future__ import annotations

import pytest

from tests.helpers import save_task_artifacts


@pytest.fixture(scope="session")
def served_folder(tmp_path_factory):
    from adapters.tiny import tiny_backbone

    return tiny_backbone(seed=0).save(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, served_folder):
    """Two versions' worth of artifacts per task (seeds 0 and 1 give different outputs)."""
    from adapters.backbones import load_backbone

    root = tmp_path_factory.mktemp("artifacts")
    return {seed: save_task_artifacts(root / f"seed{seed}", load_backbone(str(served_folder)), seed=seed)
            for seed in (0, 1)}


@pytest.fixture()
def store(tmp_path, artifacts, served_folder):
    from adapters.registry import Registry

    registry = Registry(tmp_path / "store")
    for task, path in artifacts[0].items():
        registry.push(path, task=task, activate=True)
    return tmp_path / "store"


def make_settings(store, served_folder, **overrides):
    from service.settings import ServiceSettings

    values = {"store": store, "backbone": str(served_folder), "device": "cpu", "poll_interval_s": 0.2,
              "admin_tokens": "admin-secret", "predict_tokens": "", **overrides}
    return ServiceSettings(**values)


@pytest.fixture()
def make_client(store, served_folder):
    """Build an in-process client: make_client(**settings overrides) -> (TestClient, engine)."""
    from starlette.testclient import TestClient

    from service.app import create_app
    from service.inference import Engine

    engines = []

    def build(**overrides):
        settings = make_settings(store, served_folder, **overrides)
        engine = Engine(settings)
        engine.start(poll=True)
        engines.append(engine)
        return TestClient(create_app(settings, lambda: engine), raise_server_exceptions=False), engine

    yield build
    for engine in engines:
        engine.close()

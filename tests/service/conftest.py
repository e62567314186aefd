"""A served tiny base in a folder, a store with one active version per preset task,
and the service's ASGI app in process (no BentoML; the real server has its own tests)."""

from __future__ import annotations

import pytest

from tests.helpers import active_store, save_task_artifacts


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, served_folder):
    """Two versions' worth of artifacts per task (seeds 0 and 1 give different outputs)."""
    from bedside.adapters.backbones import load_backbone

    root = tmp_path_factory.mktemp("artifacts")
    return {
        seed: save_task_artifacts(root / f"seed{seed}", load_backbone(str(served_folder)), seed=seed) for seed in (0, 1)
    }


@pytest.fixture()
def store(tmp_path, artifacts):
    return active_store(tmp_path / "store", artifacts[0])


def make_settings(store, served_folder, **overrides):
    from bedside.service.settings import ServiceSettings

    values = {
        "store": store,
        "backbone": str(served_folder),
        "device": "cpu",
        "poll_interval_s": 0.2,
        "admin_tokens": "admin-secret",
        "predict_tokens": "",
        **overrides,
    }
    return ServiceSettings(**values)


def build_client(store, served_folder, poll: bool = False, **overrides):
    """An Engine on ``store`` and a TestClient over the app (no BentoML): (client, engine)."""
    from starlette.testclient import TestClient

    from bedside.service.app import create_app
    from bedside.service.inference import Engine

    settings = make_settings(store, served_folder, **overrides)
    engine = Engine(settings)
    engine.start(poll=poll)
    return TestClient(create_app(settings, lambda: engine), raise_server_exceptions=False), engine


@pytest.fixture()
def make_client(store, served_folder):
    """Build an in-process client: make_client(**settings overrides) -> (TestClient, engine)."""
    engines = []

    def build(**overrides):
        client, engine = build_client(store, served_folder, poll=True, **overrides)
        engines.append(engine)
        return client, engine

    yield build
    for engine in engines:
        engine.close()


@pytest.fixture()
def live_client(make_client):
    """make_client's, with one event loop kept running across requests (as a server's is), so
    work a request leaves in the background (a shadow's comparison) gets done."""
    entered = []

    def build(**overrides):
        client, engine = make_client(**overrides)
        entered.append(client.__enter__())
        return client, engine

    yield build
    for client in entered:
        client.__exit__(None, None, None)


# -- a real `bentoml serve` process (tests/service/test_server.py) ---------------------------
ADMIN_TOKEN = "admin-secret"
PREDICT_TOKEN = "predict-secret"


class LiveServer:
    """A running server: its URL, store, log file and tokens."""

    def __init__(self, url, store, log_file, process):
        self.url, self.store, self.log_file, self.process = url, store, log_file, process
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.predict = {"Authorization": f"Bearer {PREDICT_TOKEN}"}

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, artifacts, served_folder):
    """One real server per module on a free loopback port; v1 (seed 0) active for every task.

    resident_cap=0 so that swaps unload a retired version as soon as its last request ends."""
    from bedside.service.server import server_env, start_server, stop_server, wait_ready

    root = tmp_path_factory.mktemp("live")
    store = active_store(root / "store", artifacts[0])
    env = server_env(
        store=store,
        backbone=served_folder,
        device="cpu",
        admin_tokens=ADMIN_TOKEN,
        predict_tokens=PREDICT_TOKEN,
        poll_interval_s=0.3,
        resident_cap=0,
        threads=1,
        header_timeout_s=2,
        body_timeout_s=2,
    )
    env["PYTHONUNBUFFERED"] = "1"  # the log file is read while the server runs
    log_file = root / "server.log"
    url = f"http://127.0.0.1:{free_port()}"
    process = start_server(int(url.rsplit(":", 1)[1]), env, log_file=log_file)
    try:
        try:
            wait_ready(url, process, timeout=120)
        except (RuntimeError, TimeoutError) as exc:
            tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
            raise RuntimeError(f"{exc}\n--- server log ---\n{tail}") from None
        yield LiveServer(url, store, log_file, process)
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def http(live_server):
    """An httpx client on the live server with the predict token."""
    import httpx

    with httpx.Client(
        base_url=live_server.url, headers=live_server.predict, timeout=httpx.Timeout(30.0, connect=5.0)
    ) as client:
        yield client

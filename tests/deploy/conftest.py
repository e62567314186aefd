"""A real bedside server (BentoML, CPU, tiny base, four active adapters) for the deploy tests.

The base folder and the store are built the way tests/service/conftest.py builds them. The server
gets its own BENTOML_HOME, so its Prometheus multiprocess files never mix with anyone else's.
"""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from bedside.adapters.registry import Registry
from tests.helpers import active_store, save_task_artifacts

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# One item per request at most in the queue: a two-text request is always turned away with 429,
# which gives the metrics a "rejected" outcome without racing anything.
SERVER_SETTINGS = {"device": "cpu", "poll_interval_s": 0.5, "max_items": 4, "max_queue_rows": 1,
                   "admin_tokens": "admin-secret", "predict_tokens": ""}

PREDICTIONS = {
    "mortality": {"task": "mortality", "texts": ["septic shock , intubated"]},
    "length_of_stay": {"task": "length_of_stay", "texts": ["admitted for surgery and rehab placement"]},
    "ner": {"task": "ner", "texts": ["chest pain treated with iv lasix"]},
    "relations": {"task": "relations", "items": [{"text": "lasix was given for edema",
                                                  "head": {"start": 0, "end": 5},
                                                  "tail": {"start": 20, "end": 25}}]},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll ``check()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout:.0f} s (last: {last!r})")


@pytest.fixture(scope="package")
def deploy_base(served_folder):
    return served_folder


@pytest.fixture(scope="package")
def deploy_store(tmp_path_factory, deploy_base):
    from bedside.adapters.backbones import load_backbone

    root = tmp_path_factory.mktemp("deploy-store")
    artifacts = save_task_artifacts(root / "artifacts", load_backbone(str(deploy_base)), seed=0)
    store = active_store(root / "store", artifacts)
    # a fresh base: PEFT injects layers into the encoder it trains
    candidates = save_task_artifacts(root / "candidates", load_backbone(str(deploy_base)), 1, ["mortality", "ner"])
    registry = Registry(store)
    for task, folder in candidates.items():  # v2: the shadow and canary candidates
        registry.push(folder, task=task)
    return store


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log
        self.client = httpx.Client(base_url=url, timeout=30)

    def predict_all(self) -> None:
        """One successful prediction per task (and one /extract)."""
        for task, body in PREDICTIONS.items():
            answer = self.client.post("/predict", json=body)
            assert answer.status_code == 200, (task, answer.status_code, answer.text[:200])
        assert self.client.post("/extract", json={"text": "pain"}).status_code == 200

    def reject_one(self) -> None:
        """Two rows against a one-row queue: 429, counted as outcome="rejected"."""
        answer = self.client.post("/predict", json={"task": "mortality", "texts": ["a", "b"]})
        assert answer.status_code == 429, (answer.status_code, answer.text[:200])

    def start_rollouts(self) -> None:
        """A shadow for mortality and a canary for ner (v2 of each), so rollout metrics exist."""
        admin = {"Authorization": f"Bearer {SERVER_SETTINGS['admin_tokens']}"}
        for path, params in (("mortality/v2/shadow", None), ("ner/v2/canary", {"percent": 50})):
            answer = self.client.post(f"/admin/adapters/{path}", params=params, headers=admin)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])

    def too_many_items(self) -> None:
        """More items than max_items: 413, counted as outcome="client_error"."""
        answer = self.client.post("/predict", json={"task": "mortality", "texts": ["a"] * 5})
        assert answer.status_code == 413, (answer.status_code, answer.text[:200])

    def metrics(self) -> str:
        answer = self.client.get("/metrics")
        assert answer.status_code == 200
        return answer.text


@pytest.fixture(scope="package")
def _server_process(tmp_path_factory, deploy_base, deploy_store):
    """Start the server process (without waiting for it: it loads while other tests run)."""
    from bedside.service.server import server_env, start_server, stop_server

    home = tmp_path_factory.mktemp("deploy-server")
    env = server_env(store=deploy_store, backbone=str(deploy_base), **SERVER_SETTINGS)
    env["BENTOML_HOME"] = str(home / "bentoml")
    port = free_port()
    log = home / "server.log"
    process = start_server(port, env, log_file=log)
    server = Server(f"http://127.0.0.1:{port}", log)
    try:
        yield process, server
    finally:
        server.client.close()
        stop_server(process)


@pytest.fixture(scope="package", autouse=True)
def _start_server_early(request):
    """Start the server at the first deploy test when any selected test needs it."""
    if any("bedside_server" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("_server_process")


@pytest.fixture(scope="package")
def bedside_server(_server_process):
    from bedside.service.server import wait_ready

    process, server = _server_process
    try:
        wait_ready(server.url, process, timeout=120)
    except (RuntimeError, TimeoutError) as exc:
        tail = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
        raise RuntimeError(f"{exc}\n--- server log ---\n{tail}") from None
    return server


def tool(name: str, *fallbacks: str) -> str | None:
    """Path of a command-line tool, or None."""
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate)
        if found:
            return found
    return None

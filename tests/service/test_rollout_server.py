"""Two real server processes on one store apply the same canary split and the same shadow."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import active_store
from tests.service.conftest import ADMIN_TOKEN, free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory, artifacts, served_folder):
    from bedside.adapters.registry import Registry
    from bedside.service.server import server_env, start_server, stop_server, wait_ready

    root = tmp_path_factory.mktemp("replicas")
    store = active_store(root / "store", artifacts[0])
    Registry(store).push(artifacts[1]["mortality"], task="mortality")  # v2
    env = server_env(
        store=store, backbone=served_folder, device="cpu", admin_tokens=ADMIN_TOKEN, poll_interval_s=0.3, threads=1
    )
    ports = [free_port(), free_port()]
    processes = [start_server(port, env, log_file=root / f"server{i}.log") for i, port in enumerate(ports)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes):
            wait_ready(url, process, timeout=120)
        yield urls, root
    finally:
        for process in processes:
            stop_server(process)


def rollout_of(url: str) -> dict | None:
    return httpx.get(f"{url}/status", timeout=10).json()["tasks"]["mortality"].get("rollout")


def versions(url: str, ids: list[str]) -> list[str]:
    body = {"task": "mortality", "texts": ["septic shock , intubated"]}
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post("/predict", json=body, headers={"X-Request-ID": i}).json()["adapter"]["version"] for i in ids
        ]


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the other replica never followed the store"
        time.sleep(0.1)


def test_two_replicas_on_one_store_apply_the_same_split_and_the_same_end(two_servers):
    (a, b), root = two_servers
    r = httpx.post(f"{a}/admin/adapters/mortality/v2/canary", params={"percent": 30}, headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    wait_for(lambda: rollout_of(b) == {"mode": "canary", "version": "v2", "percent": 30.0})
    ids = [f"visit-{i}" for i in range(200)]
    on_a, on_b = versions(a, ids), versions(b, ids)
    assert on_a == on_b  # the same request id gets the same version on every replica
    assert 30 <= on_a.count("v2") <= 90  # about 30 % of 200
    assert httpx.post(f"{b}/admin/adapters/mortality/abort", headers=ADMIN, timeout=60).status_code == 200
    wait_for(lambda: rollout_of(a) is None)
    assert set(versions(a, ids[:50])) == set(versions(b, ids[:50])) == {"v1"}
    metrics = httpx.get(f"{a}/metrics", timeout=10).text
    assert 'role="canary",task="mortality",version="v2"' in metrics
    for log in root.glob("server*.log"):
        assert "visit-" not in log.read_text(errors="replace")  # request ids are hashed, never logged


def bedside(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bedside.cli", *args],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_shadow_started_from_the_cli_runs_on_both_replicas_and_reports_there(two_servers):
    (a, b), root = two_servers
    store = str(root / "store")
    started = bedside("adapters", "shadow", "mortality", "v2", "--store", store)
    assert started.returncode == 0, started.stdout + started.stderr
    for url in (a, b):
        wait_for(lambda url=url: rollout_of(url) == {"mode": "shadow", "version": "v2", "percent": 0.0})
        assert set(versions(url, [f"s-{i}" for i in range(5)])) == {"v1"}  # a shadow answers none
    listed = bedside("adapters", "list", "mortality", "--store", store)
    assert "shadow" in listed.stdout, listed.stdout
    report = bedside("adapters", "shadow-report", "mortality", "--url", a, env={"BEDSIDE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert report.returncode == 0, report.stdout + report.stderr
    said = " ".join((report.stdout + report.stderr).split())
    assert "v1 vs v2: compared" in said and "label agreement" in said, said
    (pair,) = httpx.get(f"{b}/admin/adapters/mortality/shadow", headers=ADMIN, timeout=10).json()["pairs"]
    assert (pair["active"], pair["candidate"]) == ("v1", "v2") and sum(pair["requests"].values()) >= 1
    ended = bedside("adapters", "abort", "mortality", "--store", store)
    assert ended.returncode == 0 and "aborted the shadow" in ended.stdout, ended.stdout + ended.stderr
    for url in (a, b):
        wait_for(lambda url=url: rollout_of(url) is None)

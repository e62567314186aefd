"""``bedside serve`` and ``bedside demo`` as a service manager or an operator runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import typer
from typer.testing import CliRunner

from tests.helpers import active_store
from tests.service.conftest import free_port


def _root() -> typer.Typer:
    from bedside.cli import _register

    app = typer.Typer()
    _register(app)
    return app


def test_serve_refuses_an_open_predict_api_on_the_network(monkeypatch):
    monkeypatch.delenv("BEDSIDE_PREDICT_TOKENS", raising=False)
    monkeypatch.setattr(os, "execve", lambda *a: (_ for _ in ()).throw(AssertionError("the server was started")))
    result = CliRunner().invoke(_root(), ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-unauthenticated" in result.output


def test_serve_binds_loopback_unless_told_otherwise(monkeypatch):
    started = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: started.append(argv))
    assert CliRunner().invoke(_root(), ["serve", "--port", "3111"]).exit_code == 0
    argv = started[0]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "3111"
    monkeypatch.setenv("BEDSIDE_PREDICT_TOKENS", "t1")
    assert CliRunner().invoke(_root(), ["serve", "--host", "0.0.0.0", "--keepalive-timeout-s", "3"]).exit_code == 0
    argv = started[1]
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--timeout-keep-alive") + 1] == "3"


def test_demo_stopped_with_sigterm_stops_the_server_it_started(tmp_path, artifacts, served_folder):
    store = active_store(tmp_path / "store", artifacts[0])
    port = free_port()
    env = {**os.environ, "BEDSIDE_BACKBONE": str(served_folder), "BEDSIDE_DEVICE": "cpu", "BEDSIDE_THREADS": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "bedside.cli", "demo", "--port", str(port), "--store", str(store),
         "--workdir", str(tmp_path / "work")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert demo.poll() is None, "the demo exited before its server was ready"
            time.sleep(0.5)
        else:
            raise AssertionError("the demo's server did not become ready")
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(40) is not None
        with socket.socket() as sock:  # nothing is left answering on the port
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)

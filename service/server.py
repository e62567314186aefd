"""Start and stop a real BentoML server process (used by serve, demo, benchmarks and tests)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import bedside
from bedside import ENV_DEFAULTS

SERVICE = "bedside.service.bento:Bedside"  # what ``bentoml serve`` imports
# BentoML puts its working directory first on sys.path: the folder that holds the ``bedside``
# package (the repository in a checkout, site-packages in an install), never a sub-package.
WORKING_DIR = Path(bedside.__file__).resolve().parent.parent


def server_env(**settings) -> dict[str, str]:
    """The environment a server reads its settings from (``BEDSIDE_*``)."""
    env = dict(os.environ)
    env.update(ENV_DEFAULTS)
    for key, value in settings.items():
        if value is not None:
            env[f"BEDSIDE_{key.upper()}"] = str(value)
    return env


def serve_command(port: int, host: str = "127.0.0.1", keepalive_s: int = 5) -> list[str]:
    """The ``bentoml serve`` command line of the bedside service: ``python -m bentoml``, so it runs
    wherever bentoml imports (a venv, or wheels unpacked onto PYTHONPATH with no script)."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(port), "--host", host,
            "--timeout-keep-alive", str(keepalive_s), "--working-dir", str(WORKING_DIR)]  # fmt: skip


def start_server(port: int, env: dict[str, str], log_file: Path | None = None) -> subprocess.Popen:
    """``bentoml serve`` on loopback in its own process group. Unless ``env`` names a BENTOML_HOME,
    the server gets a private one: BentoML wipes ``$BENTOML_HOME/prometheus_multiproc_dir`` when it
    starts, so servers sharing a home (a test run beside a demo, two test runs) would erase each
    other's metrics."""
    env, home = dict(env), None
    if "BENTOML_HOME" not in env:
        home = env["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bedside-bentoml-")
    command = serve_command(port, "127.0.0.1", int(env.get("BEDSIDE_KEEPALIVE_TIMEOUT_S", 5)))
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - the server's, for its life
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    setattr(process, "bentoml_home", home)  # noqa: B010 - removed by stop_server
    return process


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 180.0) -> None:
    """Wait for BentoML's /readyz (base warm and at least one task serving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server at {url} was not ready within {timeout:.0f} s")


def stop_server(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group; SIGKILL what is left after ``timeout``."""
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    finally:
        home = getattr(process, "bentoml_home", None)
        if home:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def served(log_file: Path | None, timeout: float = 300.0, **settings) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server on a free loopback port with ``settings`` (``BEDSIDE_*``), ready: (url, process);
    stopped on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = start_server(port, server_env(**settings), log_file=log_file)
    try:
        wait_ready(url, process, timeout=timeout)
        yield url, process
    finally:
        stop_server(process)

"""The code passes its linter, formatter and type checker (configured in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"adapters": "adapters", "training": "training", "service": "service"}


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"{name} is not installed (bash deploy/setup.sh --dev installs it)")
    return str(path)


def _run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format_find_nothing():
    ruff = _tool("ruff")
    lint = _run([ruff, "check", "--no-cache", "."], ROOT)
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = _run([ruff, "format", "--check", "--no-cache", "."], ROOT)
    assert fmt.returncode == 0, fmt.stdout[-4000:]


def test_mypy_finds_nothing_in_the_packages(tmp_path):
    """mypy names modules by their folders, and bedside's folders are mapped (package-dir): it checks
    a tree of links laid out as the installed package is, ``bedside/adapters`` -> ``adapters/``."""
    mypy = _tool("mypy")
    tree = tmp_path / "tree" / "bedside"
    tree.mkdir(parents=True)
    for file in (ROOT / "bedside").glob("*.py"):
        (tree / file.name).symlink_to(file)
    for name, folder in PACKAGES.items():
        (tree / name).symlink_to(ROOT / folder, target_is_directory=True)
    cache = ROOT / ".mypy_cache"  # reused across local runs; a clean clone starts cold
    env = {**os.environ, "MYPYPATH": str(tree.parent)}
    result = _run(
        [mypy, "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache), "-p", "bedside"],
        tree.parent,
        env,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    shutil.rmtree(tmp_path / "tree", ignore_errors=True)

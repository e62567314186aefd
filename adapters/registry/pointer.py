"""A task's active pointer: the version that serves, and the history a rollback walks back through.

Stored as ``active.json``: ``{"active": "v3", "history": ["v1", "v2"], "previous": "v2", ...}``
(``previous`` is the history's last entry, kept for readers of the older format). Activating a
version pushes the one it replaces onto the history; a rollback re-activates the history's last
entry and removes it, so each rollback goes one step further back; deactivating pushes the
active version and leaves none active.

A rollout (``"rollout": {"mode": "shadow" | "canary", "version": "v4", "percent": 10}``) names a
candidate beside the active version: every replica reading the pointer applies the same one.
Any move of the active version ends it (a promotion is an activation of the candidate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HISTORY_CAP = 64  # versions a task can roll back through
ROLLOUT_MODES = ("shadow", "canary")


@dataclass(frozen=True)
class Rollout:
    """A candidate version beside the active one: ``shadow`` (answers nothing, compared on every
    request) or ``canary`` (answers ``percent`` of the requests)."""

    mode: str
    version: str
    percent: float = 0.0

    @classmethod
    def read(cls, raw: Any) -> Rollout | None:
        if not isinstance(raw, dict) or raw.get("mode") not in ROLLOUT_MODES or not raw.get("version"):
            return None
        return cls(str(raw["mode"]), str(raw["version"]), float(raw.get("percent") or 0.0))

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "version": self.version, "percent": self.percent}


@dataclass(frozen=True)
class Pointer:
    active: str | None = None
    history: tuple[str, ...] = field(default=())
    rollout: Rollout | None = None

    @classmethod
    def read(cls, raw: dict[str, Any] | None) -> Pointer:
        raw = raw or {}
        history = raw.get("history")
        if history is None:  # written before histories: one step back
            history = [raw["previous"]] if raw.get("previous") else []
        return cls(raw.get("active"), tuple(str(v) for v in history), Rollout.read(raw.get("rollout")))

    def _pushed(self) -> tuple[str, ...]:
        return (self.history + ((self.active,) if self.active else ()))[-HISTORY_CAP:]

    def activated(self, version: str) -> Pointer:
        return self if version == self.active else Pointer(version, self._pushed())

    def deactivated(self) -> Pointer:
        return Pointer(None, self._pushed())

    def rolled_back(self) -> Pointer:
        """The pointer after a rollback (raises IndexError when the history is empty)."""
        return Pointer(self.history[-1], self.history[:-1])

    def with_rollout(self, rollout: Rollout | None) -> Pointer:
        return Pointer(self.active, self.history, rollout)

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "history": list(self.history),
            "previous": self.history[-1] if self.history else None,
            "rollout": self.rollout.as_dict() if self.rollout else None,
        }


def expect(pointer: Pointer, expected: str | None) -> str | None:
    """Compare-and-set: None when ``expected`` (a version, or ``none`` for no active version) names the
    active version or is not given; else why not."""
    if expected is None:
        return None
    want = None if expected.strip().lower() == "none" else expected.strip().strip('"')
    if want == pointer.active:
        return None
    return f"the active version is {pointer.active or 'none'}, not {want or 'none'}"

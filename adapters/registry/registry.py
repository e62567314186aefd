"""The adapter registry: versions per task, one active each, every change audited.

The CLI and the service's admin API both call this class; the rules live here
and nowhere else. Importing it is cheap (no torch): heavy validation and the
smoke prediction are imported only when a push or an activation needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from ..tasks import PRESETS, TaskSpec
from .backend import StoreBackend
from .config import resolve_store
from .errors import (
    BaseMismatch,
    Conflict,
    InvalidRequest,
    NotFound,
    NotServable,
    RegistryError,
    SmokeFailed,
    StoreUnavailable,
)
from .fsio import artifact_sha256
from .local import LocalStore
from .models import AuditEntry, ExpectedBase, VersionInfo, check_task_name, check_version_name
from .pointer import Pointer, Rollout, expect
from .reading import RegistryReads

Smoke = Callable[[Path], None]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Registry(RegistryReads):
    """Open a store. ``backbone`` (the served base) enables shape checks and the default smoke."""

    def __init__(
        self,
        root: str | Path | None = None,
        expected_base: ExpectedBase | tuple | None = None,
        base_encoder=None,
        smoke: Smoke | None = None,
        backbone=None,
        limits=None,
        backend: StoreBackend | None = None,
    ) -> None:
        self.backend = backend or LocalStore(resolve_store(root))
        if backbone is not None:
            expected_base = expected_base or (backbone.name, backbone.fingerprint, backbone.hidden_size)
            base_encoder = backbone.encoder if base_encoder is None else base_encoder
            if smoke is None:
                from .smoke import default_smoke

                smoke = default_smoke(backbone)
        self.expected_base = ExpectedBase(*expected_base) if expected_base is not None else None
        self.base_encoder = base_encoder
        self.smoke = smoke  # None: activation checks integrity only (no base to predict with)
        self.limits = limits  # None: validate.Limits() defaults

    @property
    def root(self) -> Path:
        return self.backend.root

    # -- push ---------------------------------------------------------------------
    def push(
        self,
        src_dir: str | Path,
        task: str | None = None,
        actor: str = "cli",
        activate: bool = False,
        check: bool = False,
    ) -> VersionInfo:
        """Validate a copy of ``src_dir`` in staging and publish it as the task's next version.

        ``check``: run the activation check (the smoke prediction) on the staged copy first, so a
        version that fails it is never stored. Bytes identical to a stored version of the task
        (same sha256) store nothing and return that version."""
        from .ingest import stage_files
        from .validate import Limits, check_task_spec, validate_artifact

        sha = existing = None
        try:
            task = check_task_name(task) if task is not None else None
            self.backend.clean_staging()
            with self.backend.staging() as staged:
                files = stage_files(Path(src_dir), staged, self.limits or Limits())
                sha = artifact_sha256(files)
                checked = validate_artifact(
                    staged, self.limits or Limits(), self.expected_base, self.base_encoder, task
                )
                task = checked.manifest.task.name
                check_task_spec(checked.manifest.task, self._expected_spec(task))
                existing = self._stored(task, sha)
                if existing is None:
                    if check:
                        self._smoke(staged, f"the {task} upload")
                    version = self.backend.commit(task, staged, self._record(checked.manifest, files, sha, actor))
                else:
                    version = existing
        except (RegistryError, OSError) as exc:
            self._refused(actor, "push", task, None, sha, exc)
        assert task is not None  # the manifest named it
        self.audit(actor, "push", task, version, sha, "ok", None if existing is None else "identical: nothing stored")
        if activate:
            try:
                return self.activate(task, version, actor)
            except RegistryError as exc:
                exc.message = f"{version} was stored but not activated: {exc.message}"
                exc.args = (exc.message,)
                raise
        return self.show(task, version)

    def _stored(self, task: str, sha: str) -> str | None:
        """The task's version with exactly these bytes, if one is stored."""
        for version in self.backend.versions(task):
            try:
                if self.backend.read_record(task, version).get("sha256") == sha:
                    return version
            except RegistryError:
                continue
        return None

    def _expected_spec(self, task: str) -> TaskSpec | None:
        """A preset's spec, else the spec the task's newest stored version was pushed with."""
        if task in PRESETS:
            return PRESETS[task]
        for version in reversed(self.backend.versions(task)):
            try:
                return TaskSpec.model_validate(self.backend.read_record(task, version)["task_spec"])
            except (RegistryError, KeyError, ValueError):
                continue
        return None

    @staticmethod
    def _record(manifest, files: dict[str, str], sha: str, actor: str) -> dict[str, Any]:
        return {
            "sha256": sha,
            "files": files,
            "pushed_at": _now(),
            "pushed_by": actor,
            "name": manifest.name,
            "method": manifest.method.value,
            "metrics": manifest.metrics,
            "created_at": manifest.created_at.isoformat(),
            "servable": manifest.servable,
            "not_servable_reason": manifest.not_servable_reason,
            "task_kind": manifest.task.kind.value,
            "labels": list(manifest.task.labels),
            "task_spec": manifest.task.model_dump(mode="json"),
            "base_name": manifest.base.name,
            "base_fingerprint": manifest.base.fingerprint,
        }

    # -- activation ------------------------------------------------------------------
    def activate(self, task: str, version: str, actor: str = "cli", expected: str | None = None) -> VersionInfo:
        """Smoke-test ``version`` and make it the task's active one (the one it replaces joins the
        rollback history). ``expected``: compare-and-set on the active version (Conflict otherwise)."""
        sha = current = None
        try:
            sha = self._servable(task, version)
            with self.backend.task_lock(task):
                self.backend.read_record(task, version)  # deleted meanwhile -> NotFound
                pointer = self._pointer(task, expected)
                current = pointer.active
                if current != version:  # re-activating the active version changes nothing
                    self._point(task, pointer.activated(version), sha, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "activate", task, version, sha, exc)
        self.audit(actor, "activate", task, version, sha, "ok", None if current != version else "already active")
        return self.show(task, version)

    def _servable(self, task: str, version: str) -> str | None:
        """Every check a version passes before it may answer (servable, base, integrity, smoke);
        its sha256."""
        check_task_name(task), check_version_name(version)
        self.backend.clean_staging()
        record = self.backend.read_record(task, version)
        if not record.get("servable", True):
            raise NotServable(
                f"{task} {version} is not servable on the shared base: "
                f"{record.get('not_servable_reason') or 'no reason given'}"
            )
        self._check_base(record)
        self._check_integrity(task, version, record)
        self._run_smoke(task, version)  # outside the lock: the version is immutable
        return record.get("sha256")

    # -- rollout: a candidate beside the active version ------------------------------------
    def shadow(self, task: str, version: str, actor: str = "cli", expected: str | None = None) -> Rollout:
        """Run ``version`` on every request of the task beside the active one; only the active answers."""
        return self._start_rollout(task, Rollout("shadow", version), actor, expected)

    def canary(
        self, task: str, version: str, percent: float, actor: str = "cli", expected: str | None = None
    ) -> Rollout:
        """Let ``version`` answer ``percent`` (0 < p < 100) of the task's requests."""
        return self._start_rollout(task, Rollout("canary", version, float(percent)), actor, expected)

    def _start_rollout(self, task: str, rollout: Rollout, actor: str, expected: str | None) -> Rollout:
        sha = None
        version = rollout.version
        try:
            if rollout.mode == "canary" and not 0 < rollout.percent < 100:
                raise InvalidRequest("a canary's share is a percentage above 0 and below 100")
            sha = self._servable(task, version)
            with self.backend.task_lock(task):
                self.backend.read_record(task, version)  # deleted meanwhile -> NotFound
                pointer = self._pointer(task, expected)
                if pointer.active is None:
                    raise Conflict(f"task {task!r} has no active version to compare a candidate with")
                if pointer.active == version:
                    raise Conflict(f"{task} {version} is the active version; name another as the candidate")
                self._point(task, pointer.with_rollout(rollout), sha, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, rollout.mode, task, version, sha, exc)
        how = f"{rollout.percent:g}% of requests" if rollout.mode == "canary" else "beside the active version"
        self.audit(actor, rollout.mode, task, version, sha, "ok", f"{how}; active {pointer.active}")
        return rollout

    def rollout(self, task: str) -> Rollout | None:
        """The task's candidate, if a shadow or canary is running."""
        return Pointer.read(self.backend.read_pointer(check_task_name(task))).rollout

    def promote(self, task: str, actor: str = "cli", expected: str | None = None) -> VersionInfo:
        """Make the running candidate the active version (ends the rollout; the old active version
        joins the rollback history)."""
        version = sha = current = None
        try:
            check_task_name(task)
            with self.backend.task_lock(task):
                pointer = self._pointer(task, expected)
                if pointer.rollout is None:
                    raise NotFound(f"task {task!r} has no shadow or canary to promote")
                version, current = pointer.rollout.version, pointer.active
                record = self.backend.read_record(task, version)
                sha = record.get("sha256")
                self._check_integrity(task, version, record)  # checked in full when the rollout began
                self._point(task, pointer.activated(version), sha, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "promote", task, version, sha, exc)
        self.audit(actor, "promote", task, version, sha, "ok", f"replaced {current}")
        return self.show(task, version)

    def abort(self, task: str, actor: str = "cli", expected: str | None = None) -> Rollout:
        """End the running shadow or canary: the active version answers every request again."""
        version = None
        try:
            check_task_name(task)
            with self.backend.task_lock(task):
                pointer = self._pointer(task, expected)
                if pointer.rollout is None:
                    raise NotFound(f"task {task!r} has no shadow or canary to abort")
                rollout, version = pointer.rollout, pointer.rollout.version
                self._point(task, pointer.with_rollout(None), None, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "abort", task, version, None, exc)
        self.audit(actor, "abort", task, version, None, "ok", f"{rollout.mode} ended; active {pointer.active}")
        return rollout

    def rollback(self, task: str, actor: str = "cli", expected: str | None = None) -> VersionInfo:
        """Re-activate the version the history ends with, and take it off the history (a second
        rollback goes one step further back); NotFound when there is none or it was deleted."""
        version = sha = current = None
        try:
            check_task_name(task)
            self.backend.clean_staging()
            with self.backend.task_lock(task):
                pointer = self._pointer(task, expected)
                current = pointer.active
                if not pointer.history:
                    raise NotFound(f"task {task!r} has no previous active version to roll back to")
                back = pointer.rolled_back()
                version = str(back.active)
                try:
                    record = self.backend.read_record(task, version)
                except NotFound:
                    raise NotFound(f"the previous version of {task!r}, {version}, was deleted") from None
                sha = record.get("sha256")
                self._check_integrity(task, version, record)
                self._point(task, back, sha, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "rollback", task, version, sha, exc)
        self.audit(actor, "rollback", task, version, sha, "ok", f"replaced {current}")
        return self.show(task, version)

    def deactivate(self, task: str, actor: str = "cli", expected: str | None = None) -> None:
        """Leave the task without an active version (the one it had joins the rollback history)."""
        version = None
        try:
            check_task_name(task)
            with self.backend.task_lock(task):
                pointer = self._pointer(task, expected)
                version = pointer.active
                if version is None:
                    raise NotFound(f"task {task!r} has no active version")
                self._point(task, pointer.deactivated(), None, actor)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "deactivate", task, version, None, exc)
        self.audit(actor, "deactivate", task, version, None, "ok")

    def delete(self, task: str, version: str, actor: str = "cli") -> None:
        """Remove a version that is not active (its number is never handed out again)."""
        sha = None
        try:
            check_task_name(task), check_version_name(version)
            self.backend.clean_staging()
            with self.backend.task_lock(task):
                sha = self.backend.read_record(task, version).get("sha256")
                pointer = Pointer.read(self.backend.read_pointer(task))
                if pointer.active == version:
                    raise Conflict(f"{task} {version} is active; activate another version (or roll back) first")
                if pointer.rollout is not None and pointer.rollout.version == version:
                    raise Conflict(f"{task} {version} is the {pointer.rollout.mode} candidate; abort it first")
                self.backend.remove_version(task, version)
        except (RegistryError, OSError) as exc:
            self._refused(actor, "delete", task, version, sha, exc)
        self.audit(actor, "delete", task, version, sha, "ok")

    def _pointer(self, task: str, expected: str | None) -> Pointer:
        """The task's pointer (call under the task lock), checked against ``expected``."""
        pointer = Pointer.read(self.backend.read_pointer(task))
        if (why := expect(pointer, expected)) is not None:
            raise Conflict(f"{task}: {why}")
        return pointer

    def _point(self, task: str, pointer: Pointer, sha: str | None, actor: str) -> None:
        self.backend.write_pointer(
            task, {**pointer.as_dict(), "sha256": sha, "changed_at": _now(), "changed_by": actor}
        )

    def _check_base(self, record: dict[str, Any]) -> None:
        if self.expected_base and record.get("base_fingerprint") != self.expected_base.fingerprint:
            raise BaseMismatch(
                f"the version was trained on {record.get('base_name')!r}, not the served base "
                f"{self.expected_base.name!r}"
            )

    def _run_smoke(self, task: str, version: str) -> None:
        self._smoke(self.backend.artifact_dir(task, version), f"{task} {version}")

    def _smoke(self, folder: Path, what: str) -> None:
        if self.smoke is None:
            return
        try:
            self.smoke(folder)
        except StoreUnavailable:
            raise
        except Exception as exc:  # any failure of the callback refuses the activation
            raise SmokeFailed(f"{what} failed its smoke prediction: {str(exc)[:300]}") from None

    # -- audit ----------------------------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        task: str | None,
        version: str | None = None,
        sha256: str | None = None,
        outcome: str = "ok",
        reason: str | None = None,
    ) -> None:
        """Append one audit line (also for attempts denied elsewhere, e.g. a missing admin token)."""
        entry = AuditEntry(
            time=datetime.now(UTC),
            actor=str(actor)[:200],
            action=str(action)[:64],
            task=task,
            version=version,
            sha256=sha256,
            outcome=str(outcome)[:32],
            reason=reason[:500] if reason else None,
        )
        self.backend.append_audit(entry.model_dump(mode="json"))

    def _refused(self, actor: str, action: str, task, version, sha, error: RegistryError | OSError) -> NoReturn:
        """Audit a failed attempt (best effort: the store may be the problem) and re-raise it."""
        exc = StoreUnavailable.from_os_error(error, f"{action} failed") if isinstance(error, OSError) else error
        outcome = "failed" if isinstance(exc, StoreUnavailable) else "refused"
        task, version = _well_formed(check_task_name, task), _well_formed(check_version_name, version)
        try:
            self.audit(actor, action, task, version, sha, outcome, exc.message)
        except RegistryError:
            pass
        raise exc from None


def _well_formed(check, value):
    """The value if it is a well-formed name, else None (never log a path trick as a task)."""
    try:
        return check(value) if value is not None else None
    except RegistryError:
        return None

"""The admin API: list, upload, activate, roll back, deactivate and delete adapter versions;
shadow and canary candidates, promoted or aborted.

Every call needs an admin token, is audited (denied attempts too, naming only what is known),
and is counted in ``bedside_admin_actions_total``. Changes of the active pointer take
``If-Match: <version>`` (or ``none``): compare-and-set, 409 when somebody else moved it first.
An upload is checked on the served model before it is stored; a failing one stores nothing,
and bytes identical to a stored version return that version.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from bedside.adapters.registry import RegistryError, Rollout

from . import metrics
from .errors import APIError
from .guards import TokenAuth

if TYPE_CHECKING:
    from .inference import Engine

log = logging.getLogger("bedside.api")
VERSION = re.compile(r"v[1-9][0-9]{0,8}")


def admin_routes(auth: TokenAuth, engine: Callable[[], Engine]) -> APIRouter:
    router = APIRouter(prefix="/admin/adapters")

    @contextmanager
    def admin(request: Request, action: str, task: str | None = None, version: str | None = None) -> Iterator[str]:
        """The caller's audit name, once the token is an admin's; counts the action's outcome."""
        header = request.headers.get("authorization")
        outcome = "failed"
        try:
            try:
                auth.check("admin", header)
            except APIError as exc:
                outcome = "denied"
                _audit_denied(engine(), auth.actor(header), action, task, version, exc.code)
                raise
            yield auth.actor(header)
            outcome = "ok"
        except (APIError, RegistryError) as exc:
            status = exc.status if isinstance(exc, APIError) else exc.http_status
            outcome = outcome if outcome == "denied" else "refused" if status < 500 else "failed"
            raise
        finally:
            metrics.ADMIN_ACTIONS.labels(action, outcome).inc()

    def info(version) -> dict:
        return version.model_dump(mode="json", exclude={"path", "files"})

    @router.get("")
    async def list_adapters(request: Request):
        with admin(request, "list"):
            versions = await run_in_threadpool(engine().runtime.registry.list)
            return {"versions": [info(v) for v in versions]}

    @router.post("/{task}")
    async def upload(request: Request, task: str, activate: bool = False):
        with admin(request, "push", task) as actor:
            eng = engine()
            staging = Path(tempfile.mkdtemp(prefix="bedside-upload-"))
            try:
                await _save_upload(request, staging)
                # check=True: the activation check (on the served model where the backend allows) runs
                # on the staged copy; a version that fails it is never stored. It stays loaded, so an
                # activation later only flips the pointer.
                stored = await run_in_threadpool(eng.runtime.registry.push, staging, task, actor, activate, True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if activate:
                await run_in_threadpool(_refresh, eng, task)
            return {"version": info(stored), "check": {"ok": True}}

    async def move_pointer(request: Request, action: str, task: str, version: str | None, change: Callable):
        """Activate, roll back or deactivate: ``change(registry, actor, expected)`` moves the pointer
        (compare-and-set on If-Match), then the served state follows it."""
        with admin(request, action, task, version) as actor:
            eng = engine()
            await run_in_threadpool(_check_stored_task, eng, task, actor, action)
            changed = await run_in_threadpool(change, eng.runtime.registry, actor, _if_match(request))
            await run_in_threadpool(_refresh, eng, task)
            if isinstance(changed, Rollout):
                return {"rollout": changed.as_dict()}
            return {"active": None if changed is None else info(changed)}

    @router.post("/{task}/{version}/activate")
    async def activate(request: Request, task: str, version: str):
        def change(registry, actor, expected):
            return registry.activate(task, version, actor, expected)

        return await move_pointer(request, "activate", task, version, change)

    @router.post("/{task}/rollback")
    async def rollback(request: Request, task: str):
        def change(registry, actor, expected):
            return registry.rollback(task, actor, expected)

        return await move_pointer(request, "rollback", task, None, change)

    @router.post("/{task}/deactivate")
    async def deactivate(request: Request, task: str):
        def change(registry, actor, expected):
            registry.deactivate(task, actor, expected)

        return await move_pointer(request, "deactivate", task, None, change)

    # -- rollout: shadow, canary, promote, abort (docs/rollout.md) ------------------------
    @router.post("/{task}/{version}/shadow")
    async def shadow(request: Request, task: str, version: str):
        def change(registry, actor, expected):
            return registry.shadow(task, version, actor, expected)

        return await move_pointer(request, "shadow", task, version, change)

    @router.post("/{task}/{version}/canary")
    async def canary(request: Request, task: str, version: str, percent: float = Query(10.0, gt=0, lt=100)):
        def change(registry, actor, expected):
            return registry.canary(task, version, percent, actor, expected)

        return await move_pointer(request, "canary", task, version, change)

    @router.post("/{task}/promote")
    async def promote(request: Request, task: str):
        def change(registry, actor, expected):
            return registry.promote(task, actor, expected)

        return await move_pointer(request, "promote", task, None, change)

    @router.post("/{task}/abort")
    async def abort(request: Request, task: str):
        def change(registry, actor, expected):
            return registry.abort(task, actor, expected)

        return await move_pointer(request, "abort", task, None, change)

    @router.get("/{task}/shadow")
    async def shadow_report(request: Request, task: str):
        """The live comparison of this replica's shadow runs: counts and ratios, never text."""
        with admin(request, "shadow_report", task):
            eng = engine()
            eng.check_task(task)
            state = eng.runtime.states[task].as_dict()
            return {
                "task": task,
                "active": state.get("version"),
                "rollout": state.get("rollout"),
                "pairs": eng.shadows.stats.report(task),
            }

    @router.delete("/{task}/{version}")
    async def delete(request: Request, task: str, version: str):
        with admin(request, "delete", task, version) as actor:
            eng = engine()
            await run_in_threadpool(_check_stored_task, eng, task, actor, "delete")
            await run_in_threadpool(eng.runtime.registry.delete, task, version, actor)
            return {"deleted": {"task": task, "version": version}}

    return router


def _if_match(request: Request) -> str | None:
    """``If-Match: v3`` (quotes allowed) or ``none``: the active version the change expects."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    value = value.strip().strip('"')
    if value.lower() != "none" and not VERSION.fullmatch(value):
        raise APIError(400, "invalid_request", "If-Match takes a version (v1, v2, ...) or none")
    return value


def _check_stored_task(engine: Engine, task: str, actor: str, action: str) -> None:
    """A change names a task the service serves or the store holds; any other name is 404 without
    quoting it (the registry's own messages name the task: fine once it is known), and audited as
    refused without the name."""
    if task in engine.runtime.states:
        return
    try:
        stored = task in engine.runtime.registry.backend.tasks()
    except OSError:
        return  # an unreadable store: the registry call answers 503 itself
    if not stored:
        try:
            engine.runtime.registry.audit(actor, action, None, None, None, "refused", "unknown_task")
        except Exception as exc:  # auditing must not turn a 404 into a 500
            log.error("audit write failed: %s", type(exc).__name__)
        raise APIError(404, "unknown_task", "unknown task")


def _refresh(engine: Engine, task: str) -> None:
    engine.runtime.cache.ensure(task)
    engine.runtime.refresh(task)


async def _save_upload(request: Request, folder: Path) -> None:
    """Copy multipart files out of the request's temp storage into ``folder``. Field and file names
    are never quoted back: an unexpected one is named by a hash at most."""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise APIError(415, "unsupported_media_type", "upload the artifact files as multipart/form-data")
    form = await request.form(max_files=16, max_fields=16)
    try:
        for _, value in form.multi_items():
            if isinstance(value, str):
                raise APIError(400, "unexpected_field", "only files may be uploaded")
            name = value.filename or ""
            if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
                raise APIError(400, "unexpected_file", "file names must be plain names")
            target = folder / name
            if target.exists():
                raise APIError(400, "unexpected_file", "a file name was sent twice")
            with target.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, value.file, out, 1 << 20)
    finally:
        await form.close()


def _audit_denied(engine: Engine, actor: str, action: str, task, version, code: str) -> None:
    try:
        # Only names already known are recorded: an unauthenticated caller cannot write text of its choice.
        known = task in engine.runtime.states
        plain = version if known and version is not None and VERSION.fullmatch(version) else None
        engine.runtime.registry.audit(actor, action, task if known else None, plain, None, "denied", code)
    except Exception as exc:  # auditing must not turn a 401 into a 500
        log.error("audit write failed: %s", type(exc).__name__)

"""The HTTP API (FastAPI, mounted into the BentoML service).

Every error is JSON ``{"error": code, "message": text}`` with a stable code; no
body, traceback or request text is ever echoed or logged.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bedside.adapters.registry import RegistryError

from . import metrics
from .errors import APIError
from .guards import BodyLimit, Contain, TokenAuth, parse_json, require_json
from .inference import Engine
from .schemas import ExtractRequest, PairItem, PredictRequest, SpanIn
from .settings import SERVICE_VERSION, ServiceSettings

log = logging.getLogger("bedside.api")
_FIELDS = frozenset(
    name for model in (PredictRequest, ExtractRequest, PairItem, SpanIn) for name in model.model_fields
)  # request keys that may appear in error messages
_FIELDS |= {"query", "path", "activate", "task", "version"}  # FastAPI's own parameter locations
_PHRASES = {404: "no such endpoint", 405: "method not allowed on this endpoint"}


def create_app(settings: ServiceSettings, engine: Callable[[], Engine]):
    """The ASGI app. ``engine()`` returns the worker's Engine once it exists."""
    app = FastAPI(title="bedside", version=SERVICE_VERSION, docs_url="/docs", redoc_url=None)
    auth = TokenAuth(settings.tokens("predict"), settings.tokens("admin"))

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError):
        return JSONResponse(
            exc.as_dict(),
            status_code=exc.http_status,
            headers={"Retry-After": "30"} if exc.http_status in (503, 507) else None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):  # no route, wrong method, ...
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "message": _PHRASES.get(exc.status_code, "request refused")},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _param_error(request: Request, exc: RequestValidationError):  # FastAPI's would echo the input
        return JSONResponse({"error": "invalid_request", "message": _describe(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        route = getattr(request.scope.get("route"), "path", "?")  # the template: a path may hold client text
        log.error("unhandled %s on %s", type(exc).__name__, route)  # type only: no text
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    async def body(request: Request, model):
        require_json(request.headers.get("content-type"))
        data = parse_json(await request.body())
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise APIError(422, "invalid_request", _describe(exc)) from None

    # -- prediction -----------------------------------------------------------------
    @app.post("/predict", openapi_extra=_json_body(PredictRequest))
    async def predict(request: Request):
        auth.check("predict", request.headers.get("authorization"))
        req = await body(request, PredictRequest)
        eng = engine()
        kind = eng.check_ready(req.task)  # a task without an adapter has no known input shape: 503, not 422
        given = req.model_dump(include={"texts", "items"}, exclude_none=True)
        if set(given) != {kind.request_field}:
            raise APIError(422, "invalid_request", kind.request_hint)
        items = given[kind.request_field]
        with _timed(req.task, "predict") as outcome:
            results, source = await eng.run(req.task, items)
            outcome.append("ok")
        return {"task": req.task, "results": results, "adapter": source}

    @app.post("/extract", openapi_extra=_json_body(ExtractRequest))
    async def extract(request: Request):
        auth.check("predict", request.headers.get("authorization"))
        req = await body(request, ExtractRequest)
        with _timed("ner", "extract") as outcome:
            answer = await engine().extract(req.text)
            outcome.append("ok")
        return answer

    # -- health -----------------------------------------------------------------------
    @app.get("/readyz/{task}")
    async def task_ready(task: str):
        eng = engine()
        eng.check_task(task)
        state = eng.runtime.states[task]
        status = 200 if state.status == "ready" else 503
        return JSONResponse(
            {"task": task, **state.as_dict()},
            status_code=status,
            headers=None if status == 200 else {"Retry-After": "5"},
        )

    @app.get("/status")
    async def status():
        eng = engine()
        return {
            "service_version": SERVICE_VERSION,
            "backend": settings.backend,
            "runtime": eng.runtime.backend.describe(),
            "device": str(eng.runtime.device),
            "base": eng.runtime.backbone.name,
            "base_fingerprint": eng.runtime.backbone.fingerprint,
            "tasks": {t: s.as_dict() for t, s in eng.runtime.states.items()},
        }

    # -- admin --------------------------------------------------------------------------
    def admin(request: Request, action: str, task: str | None = None, version: str | None = None) -> str:
        header = request.headers.get("authorization")
        try:
            auth.check("admin", header)
        except APIError as exc:
            eng = engine()
            _audit_denied(eng, auth.actor(header), action, task, version, exc.code)
            raise
        return auth.actor(header)

    @app.get("/admin/adapters")
    async def list_adapters(request: Request):
        admin(request, "list")
        eng = engine()
        versions = await run_in_threadpool(eng.runtime.registry.list)
        return {"versions": [v.model_dump(mode="json", exclude={"path", "files"}) for v in versions]}

    @app.post("/admin/adapters/{task}")
    async def upload(request: Request, task: str, activate: bool = False):
        actor = admin(request, "push", task)
        eng = engine()
        staging = Path(tempfile.mkdtemp(prefix="bedside-upload-"))
        try:
            await _save_upload(request, staging)
            info = await run_in_threadpool(eng.runtime.registry.push, staging, task, actor, activate)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if activate:
            await run_in_threadpool(_refresh, eng, task)
            return {"version": info.model_dump(mode="json", exclude={"path", "files"})}
        # Checked and loaded now, beside the serving versions: the activation that follows flips at once.
        check = await run_in_threadpool(eng.runtime.stage, task, info.version)
        return {
            "version": info.model_dump(mode="json", exclude={"path", "files"}),
            **({"check": check} if check is not None else {}),
        }

    @app.post("/admin/adapters/{task}/{version}/activate")
    async def activate(request: Request, task: str, version: str):
        actor = admin(request, "activate", task, version)
        eng = engine()
        await run_in_threadpool(_check_stored_task, eng, task, actor, "activate")
        info = await run_in_threadpool(eng.runtime.registry.activate, task, version, actor)
        await run_in_threadpool(_refresh, eng, task)
        return {"active": info.model_dump(mode="json", exclude={"path", "files"})}

    @app.post("/admin/adapters/{task}/rollback")
    async def rollback(request: Request, task: str):
        actor = admin(request, "rollback", task)
        eng = engine()
        await run_in_threadpool(_check_stored_task, eng, task, actor, "rollback")
        info = await run_in_threadpool(eng.runtime.registry.rollback, task, actor)
        await run_in_threadpool(_refresh, eng, task)
        return {"active": info.model_dump(mode="json", exclude={"path", "files"})}

    return Contain(BodyLimit(app, settings.max_body_bytes, settings.max_upload_bytes))


def _json_body(model) -> dict:
    """The OpenAPI request body of a route that reads its raw body (so FastAPI cannot see the model):
    the model's JSON schema with its ``$defs`` inlined, since refs there would not resolve."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def _check_stored_task(engine: Engine, task: str, actor: str, action: str) -> None:
    """Activation and rollback name a task the service serves or the store holds; any other name is
    404 without quoting it (the registry's own messages name the task: fine once it is known), and
    audited as refused without the name."""
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
    """Copy multipart files out of the request's temp storage into ``folder``."""
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
        engine.runtime.registry.audit(
            actor, action, task if known else None, version if known and _plain(version) else None, None, "denied", code
        )
    except Exception as exc:  # auditing must not turn a 401 into a 500
        log.error("audit write failed: %s", type(exc).__name__)


def _plain(value: str | None) -> bool:
    """A version name (v1, v2, ...), the only free text a denied attempt may add to the audit."""
    return value is not None and re.fullmatch(r"v[1-9][0-9]{0,8}", value) is not None


def _describe(exc: ValidationError | RequestValidationError) -> str:
    """Where the request is wrong and why, without echoing any value (nor an unknown key's name)."""
    parts = []
    for error in exc.errors()[:5]:
        where = (
            ".".join(str(p) if isinstance(p, int) or p in _FIELDS else "(unknown field)" for p in error["loc"])
            or "body"
        )
        parts.append(f"{where}: {error['type'].replace('_', ' ')}")
    return "; ".join(parts)


class _timed:
    """Count a request by outcome and observe its latency."""

    def __init__(self, task: str, endpoint: str) -> None:
        self.task, self.endpoint = task, endpoint

    def __enter__(self):
        metrics.INFLIGHT.inc()
        self.start = time.perf_counter()
        self.outcome: list[str] = []
        return self.outcome

    def __exit__(self, kind, exc, tb):
        metrics.INFLIGHT.dec()
        outcome = self.outcome[0] if self.outcome else _outcome(exc)
        metrics.REQUESTS.labels(self.task, outcome).inc()
        metrics.REQUEST_SECONDS.labels(self.task, self.endpoint).observe(time.perf_counter() - self.start)
        return False


def _outcome(exc) -> str:
    if isinstance(exc, APIError):
        return {429: "rejected", 503: "unavailable", 504: "timeout"}.get(
            exc.status, "client_error" if exc.status < 500 else "error"
        )
    return "error"

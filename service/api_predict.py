"""Prediction and health routes: /predict, /extract, /readyz/{task}, /ready, /status."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import metrics
from .errors import APIError
from .examples import extract_examples, predict_examples
from .guards import TokenAuth
from .http_log import outcome_of
from .request_body import answers, json_body, openapi_body
from .schemas import ExtractRequest, ExtractResponse, PredictRequest, PredictResponse
from .settings import SERVICE_VERSION, ServiceSettings

if TYPE_CHECKING:
    from .inference import Engine


def predict_routes(settings: ServiceSettings, auth: TokenAuth, engine: Callable[[], Engine]) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/predict", openapi_extra=openapi_body(PredictRequest, predict_examples()), responses=answers(PredictResponse)
    )
    async def predict(request: Request):
        with _Timed(request, "predict") as timed:
            auth.check("predict", request.headers.get("authorization"))
            req = await json_body(request, PredictRequest)
            timed.task = req.task if req.task in engine().runtime.states else "unknown"
            eng = engine()
            kind = eng.check_ready(req.task)  # a task without an adapter has no known input shape: 503, not 422
            given = req.model_dump(include={"texts", "items"}, exclude_none=True)
            if set(given) != {kind.request_field}:
                raise APIError(422, "invalid_request", kind.request_hint)
            results, source = await eng.run(req.task, given[kind.request_field], request)
            timed.version = source["version"]
        return {"task": req.task, "results": results, "adapter": source}

    @router.post(
        "/extract", openapi_extra=openapi_body(ExtractRequest, extract_examples()), responses=answers(ExtractResponse)
    )
    async def extract(request: Request):
        with _Timed(request, "extract", task="ner") as timed:
            auth.check("predict", request.headers.get("authorization"))
            req = await json_body(request, ExtractRequest)
            answer = await engine().extract(req.text, request)
            timed.version = answer["adapters"][0]["version"]
        return answer

    @router.get("/readyz/{task}")
    async def task_ready(task: str):
        eng = engine()
        eng.check_task(task)
        state = eng.runtime.states[task]
        status = 200 if state.status == "ready" else 503
        retry = None if status == 200 else {"Retry-After": "5"}
        return JSONResponse({"task": task, **state.as_dict()}, status_code=status, headers=retry)

    @router.get("/ready")
    async def ready():
        """Readiness by the configured rule (``ready_tasks``): the probe Kubernetes should use, since
        BentoML's own /readyz is 200 once any task serves."""
        eng = engine()
        states = eng.runtime.states
        needed = _needed(settings.ready_tasks, states)
        waiting = sorted(t for t in needed if t not in states or states[t].status != "ready")
        ok = not waiting and any(s.status == "ready" for s in states.values())
        body = {"ready": ok, "rule": settings.ready_tasks, "waiting": waiting}
        return JSONResponse(body, status_code=200 if ok else 503, headers=None if ok else {"Retry-After": "5"})

    @router.get("/status")
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

    return router


def _needed(rule: str, states: dict) -> list[str]:
    """The tasks a rule waits for: ``all`` every task with an active version (one that failed to
    load is waited for; a deactivated one is off on purpose and is not), ``any`` none in particular,
    else the named ones (unknown names are waited for: a typo is never ready)."""
    if rule == "any":
        return []
    if rule == "all":
        return [t for t, s in states.items() if s.status != "no_adapter"]
    return [t.strip() for t in rule.split(",") if t.strip()]


class _Timed:
    """Count a predict request by task and outcome, its latency by the version that answered; mark
    it counted (the access log counts what is refused before a handler runs)."""

    def __init__(self, request: Request, endpoint: str, task: str = "unknown") -> None:
        self.request, self.endpoint, self.task, self.version = request, endpoint, task, "none"

    def __enter__(self) -> _Timed:
        metrics.INFLIGHT.inc()
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, exc, tb) -> None:
        metrics.INFLIGHT.dec()
        status = 200 if exc is None else exc.status if isinstance(exc, APIError) else 500
        outcome = outcome_of(status)
        metrics.REQUESTS.labels(self.task, outcome).inc()
        metrics.REQUEST_SECONDS.labels(self.task, self.endpoint, self.version).observe(time.perf_counter() - self.start)
        state = self.request.scope.setdefault("state", {})
        state["bedside_counted"] = True
        if (route := state.get("bedside_route")) is not None:  # (version, role) the engine chose
            metrics.VERSION_REQUESTS.labels(self.task, *route, outcome).inc()

"""The HTTP API (FastAPI, mounted into the BentoML service).

Every error is JSON ``{"error": code, "message": text}`` with a stable code; no body,
traceback or request text is ever echoed or logged. The stack, outermost first: the access
log and HTTP metrics (route templates only), containment of any exception, the body guard
(size, pace), then FastAPI's routes (:mod:`.api_predict`, :mod:`.api_admin`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from bedside.adapters.registry import RegistryError

from .api_admin import admin_routes
from .api_predict import predict_routes
from .errors import APIError
from .guards import BodyLimit, Contain, TokenAuth
from .http_log import AccessLog, RouteNames, templates_of
from .request_body import describe
from .settings import SERVICE_VERSION, ServiceSettings

if TYPE_CHECKING:
    from .inference import Engine

log = logging.getLogger("bedside.api")
_PHRASES = {404: "no such endpoint", 405: "method not allowed on this endpoint"}
CLIENT_CLOSED = 499  # nginx's code for "the client closed the request": a client event, never a 5xx


def create_app(settings: ServiceSettings, engine: Callable[[], Engine]):
    """The ASGI app. ``engine()`` returns the worker's Engine once it exists (503 before)."""
    app = FastAPI(title="bedside", version=SERVICE_VERSION, docs_url=None, redoc_url=None, openapi_url=None)
    auth = TokenAuth(settings.tokens("predict"), settings.tokens("admin"))

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError):
        retry = {"Retry-After": "30"} if exc.http_status in (503, 507) else None
        return JSONResponse(exc.as_dict(), status_code=exc.http_status, headers=retry)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):  # no route, wrong method, ...
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": code, "message": _PHRASES.get(exc.status_code, "request refused")}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _param_error(request: Request, exc: RequestValidationError):  # FastAPI's would echo the input
        return JSONResponse({"error": "invalid_request", "message": describe(exc)}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect):
        # Nobody reads this answer; sending one ends the request cleanly and counts it as the client's.
        return Response(status_code=CLIENT_CLOSED, headers={"Connection": "close"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        route = getattr(request.scope.get("route"), "path", "?")  # the template: a path may hold client text
        log.error("unhandled %s on %s", type(exc).__name__, route)  # type only: no text
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    predict, admin = predict_routes(settings, auth, engine), admin_routes(auth, engine)
    app.include_router(predict)
    app.include_router(admin)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        """Every worker's metrics (prometheus_client's multiprocess files) in the text format."""
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request):  # behind the predict token, like what it describes
        auth.check("predict", request.headers.get("authorization"))
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        auth.check("predict", request.headers.get("authorization"))
        return get_swagger_ui_html(openapi_url="/openapi.json", title="bedside")

    guarded = BodyLimit(app, settings.max_body_bytes, settings.max_upload_bytes, idle_s=settings.body_timeout_s)
    own = [route.path for route in app.routes if hasattr(route, "path")]  # /metrics, /docs, /openapi.json
    return AccessLog(Contain(guarded), RouteNames(templates_of(predict, admin) + own))

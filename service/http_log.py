"""The access log and the HTTP metrics, in words and labels bedside chose, never the client's.

A request is named by the route template it matched (``/readyz/{task}``), else ``unmatched``;
its method by an allow-list; its peer by the address the connection came from (a forwarded
address only from the configured proxies: uvicorn's ``FORWARDED_ALLOW_IPS``). No path, query,
header or body text reaches the log or a metric label, so neither can carry PHI nor grow
without bound. Outermost of bedside's middlewares: it sees what the guards refused too.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from starlette.routing import compile_path

from . import metrics

log = logging.getLogger("bedside.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"
# Requests for these routes are counted per task by their handler; a refusal before the handler
# (a guard's 413/415/400/408, a client gone) is counted here, with task "unparsed".
PREDICT_ROUTES = frozenset({"/predict", "/extract"})


class RouteNames:
    """Request paths to route templates (``/readyz/mortality`` -> ``/readyz/{task}``), from the
    templates the app declares: a path that matches none is ``unmatched``."""

    def __init__(self, templates: list[str]) -> None:
        self.patterns = [(compile_path(t)[0], t) for t in dict.fromkeys(templates)]

    def __call__(self, path: str) -> str:
        return next((template for pattern, template in self.patterns if pattern.match(path)), UNMATCHED)


def templates_of(*routers) -> list[str]:
    """Every route template of the given routers (APIRouters: their paths include the prefix)."""
    return [route.path for router in routers for route in router.routes if hasattr(route, "path")]


class AccessLog:
    """``app``: the middleware stack to wrap; ``routes``: what names a request."""

    def __init__(self, app, routes: RouteNames) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 0

        async def observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self.record(scope, status, time.perf_counter() - start)

    def record(self, scope, status: int, seconds: float) -> None:
        route = self.routes(scope.get("path", ""))
        method = scope.get("method") if scope.get("method") in METHODS else "OTHER"
        code = str(status) if status else "none"
        metrics.HTTP_REQUESTS.labels(route, method, code).inc()
        metrics.HTTP_SECONDS.labels(route).observe(seconds)
        counted = scope.get("state", {}).get("bedside_counted", False)
        if route in PREDICT_ROUTES and not counted:  # refused before the handler counted it
            metrics.REQUESTS.labels("unparsed", outcome_of(status)).inc()
        peer = _address((scope.get("client") or ("-",))[0])
        log.info("%s %s %s %s %.1fms", peer, method, route, code, 1000 * seconds)


def _address(host: str) -> str:
    """The peer's address as text only when it is an address (a trusted proxy could still send words)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "-"


def outcome_of(status: int) -> str:
    """The ``outcome`` label of ``bedside_requests_total`` for an HTTP status."""
    if status == 200:
        return "ok"
    if status == 429:
        return "rejected"
    if status == 499 or status == 0:
        return "client_closed"
    if status in (503, 504):
        return {503: "unavailable", 504: "timeout"}[status]
    return "client_error" if status < 500 else "error"

"""The BentoML service: ``bentoml serve service.bento:Bedside`` (or ``bedside serve``).

The base model loads once per worker; the HTTP API is the FastAPI app of
:mod:`service.app`, mounted at the root. BentoML's own ``/livez``, ``/readyz``
(ready once the base is warm and at least one task serves) and ``/metrics``
(Prometheus, aggregated across workers) stay as they are.
"""

from __future__ import annotations

import logging

import bentoml

from .app import create_app
from .inference import Engine
from .settings import ServiceSettings

settings = ServiceSettings()
_engine: dict[str, Engine] = {}


def _current() -> Engine:
    engine = _engine.get("engine")
    if engine is None:
        from .errors import APIError

        raise APIError(503, "starting", "the service is starting", {"Retry-After": "5"})
    return engine


api = create_app(settings, _current)


@bentoml.asgi_app(api, path="/")
@bentoml.service(name="bedside", workers=1, traffic={"timeout": 120}, logging={"access": {"enabled": True}})
class Bedside:
    def __init__(self) -> None:
        logging.getLogger("bedside").setLevel(logging.INFO)
        engine = Engine(settings)
        engine.start()
        _engine["engine"] = engine

    def __is_ready__(self) -> bool:
        engine = _engine.get("engine")
        return engine is not None and engine.runtime.ready()

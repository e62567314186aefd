"""The BentoML service: ``bentoml serve bedside.service.bento:Bedside`` (or ``bedside serve``).

The HTTP API is the FastAPI app of :mod:`bedside.service.app`, mounted at the root; it serves
its own ``/metrics`` (BentoML's per-path metrics and access log are off: both would carry raw
URL paths). BentoML's ``/livez`` and ``/readyz`` stay (``/readyz`` is 200 once any task serves;
``/ready`` applies bedside's rule). The worker starts answering at once and loads the base and
the adapters in the background (503 ``starting`` until then), and a dead worker is replaced
within about a second, so neither a restart nor a kill leaves clients hanging on an
unanswered socket for long.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import bentoml

from . import protocol
from .app import create_app
from .errors import APIError
from .settings import ServiceSettings

log = logging.getLogger("bedside.runtime")
GIL_SWITCH_S = 0.0005  # CPython default 0.005
RESPAWN_CHECK_S = 0.5  # how often the arbiter looks for a dead worker (BentoML's default: 10 s)

settings = ServiceSettings()
# uvicorn believes X-Forwarded-For only from these addresses (it reads the variable when the
# worker's server starts, after this import); empty: from nobody.
os.environ["FORWARDED_ALLOW_IPS"] = settings.trusted_proxies
protocol.install(settings.header_timeout_s, settings.max_header_bytes)
# The batcher thread takes the GIL back after every torch op; with a thread counting a long
# text beside it, CPython's 5 ms switch interval made each op a wait (docs/reliability.md,
# "Flooded with over-long texts").
sys.setswitchinterval(GIL_SWITCH_S)
_engine: dict = {}


def _respawn_fast(check_delay: float = RESPAWN_CHECK_S) -> None:
    """BentoML's arbiter notices a dead worker only every 10 s and offers no setting; this module is
    imported by ``bentoml serve`` before it builds the arbiter, so the factory gets a shorter delay."""
    from bentoml._internal.utils import circus as bentoml_circus

    create = bentoml_circus.create_standalone_arbiter
    if getattr(create, "bedside_check_delay", None):
        return

    def with_delay(*args, **kwargs):
        kwargs.setdefault("check_delay", check_delay)
        return create(*args, **kwargs)

    with_delay.bedside_check_delay = check_delay  # type: ignore[attr-defined]
    bentoml_circus.create_standalone_arbiter = with_delay


_respawn_fast()


def _current():
    engine = _engine.get("engine")
    if engine is None:
        raise APIError(503, "starting", "the service is starting", {"Retry-After": "5"})
    return engine


def _start() -> None:
    """Load the base and every task's adapter (in the background: the worker answers meanwhile)."""
    try:
        from .inference import Engine  # torch and the model code load here, not at import

        engine = Engine(settings)
        engine.start()
        _engine["engine"] = engine
    except Exception as exc:  # the worker stays up and says it is not ready; the log says why
        log.error("the service could not start: %s: %s", type(exc).__name__, str(exc)[:300])


api = create_app(settings, _current)


@bentoml.asgi_app(api, path="/")
@bentoml.service(
    name="bedside",
    workers=1,
    traffic={"timeout": 120},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
)
class Bedside:
    def __init__(self) -> None:
        logging.getLogger("bedside").setLevel(logging.INFO)
        threading.Thread(target=_start, name="bedside-start", daemon=True).start()

    def __is_ready__(self) -> bool:
        engine = _engine.get("engine")
        return engine is not None and engine.runtime.ready()

"""uvicorn's httptools protocol with a header deadline and a header size cap.

uvicorn (0.54) with httptools arms no timer before the first response and caps no header size:
a socket that sends half its headers, or nothing, stays open for ever, and megabytes of headers
are accepted. BentoML passes no further uvicorn settings, so the protocol class itself is
replaced (uvicorn's own table of protocols, read when the worker's server starts): a request's
line and headers must arrive within ``header_timeout_s`` and stay under ``max_header_bytes``.
Body time is bounded by :class:`~bedside.service.guards.BodyLimit`, idle keep-alive
connections by uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn.config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("bedside.http")

TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTooLarge(Exception):
    """Raised inside the parser's callbacks: uvicorn answers 400 and closes."""


class BoundedHttpTools(HttpToolsProtocol):
    header_timeout_s = 10.0
    max_header_bytes = 16384

    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _started = False  # bytes of the current request have arrived

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._started, self._header_bytes = True, 0
        if self._deadline is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._started = False
        super().on_headers_complete()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            raise HeaderTooLarge

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._started:  # half a request: say why before closing
            self.transport.write(TIMEOUT_RESPONSE)
        log.info("closed a connection whose request headers took over %.0f s", self.header_timeout_s)
        self.transport.close()


def install(header_timeout_s: float, max_header_bytes: int) -> None:
    """Make uvicorn's default HTTP protocol the bounded one (call before the server starts)."""
    BoundedHttpTools.header_timeout_s = header_timeout_s
    BoundedHttpTools.max_header_bytes = max_header_bytes
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:BoundedHttpTools"
    uvicorn.config.HTTP_PROTOCOLS["httptools"] = f"{__name__}:BoundedHttpTools"

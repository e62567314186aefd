"""What every request passes before a handler: body size, content type, bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

from .errors import APIError


class BodyTooLarge(APIError):
    """Raised from ``receive`` when a streamed body grows over the limit (the app answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"request body over {limit} bytes", {"Connection": "close"})


class BodyTimeout(APIError):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, "body_timeout", f"no part of the body for {seconds:g} s", {"Connection": "close"})


class BodyLimit:
    """ASGI middleware: 413 before parsing when a body is (or grows) over the limit, 408 when the
    next piece of it takes longer than ``idle_s``.

    A declared Content-Length is checked before a byte is read; a chunked body is
    counted as it streams in, so memory stays flat whatever the client sends, and a client that
    stops sending cannot hold a connection and a worker task.
    """

    def __init__(self, app, limit: int, upload_limit: int, upload_prefix: str = "/admin/", idle_s: float = 10.0):
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.upload_prefix = upload_prefix
        self.idle_s = idle_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"].startswith(self.upload_prefix) else self.limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _send_error(send, 413, "body_too_large", f"request body over {limit} bytes")
        seen, done = 0, False

        async def limited():
            nonlocal seen, done
            if done:  # after the body: a wait for the client's disconnect, unbounded by design
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_s)
            except TimeoutError:
                raise BodyTimeout(self.idle_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited, send)
        except (BodyTooLarge, BodyTimeout) as exc:  # only when the wrapped app has no APIError handler
            await _send_error(send, exc.status, exc.code, exc.message)


class Contain:
    """ASGI middleware: no exception leaves the app. Starlette re-raises every unhandled one
    after its 500 handler answered, and the server then logs the traceback, whose messages may
    quote request text; here it stops (the app's handler already logged its type)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if not started:
                await _send_error(send, 500, "internal", "internal error")


async def _send_error(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def require_json(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise APIError(415, "unsupported_media_type", "send the body as application/json")


def parse_json(raw: bytes):
    """Strict UTF-8 JSON; lone surrogates (valid JSON escapes, invalid text) are refused too."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(400, "invalid_encoding", "the body is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise APIError(400, "invalid_json", "the body is not valid JSON") from None
    except ValueError:  # an integer of thousands of digits (Python's int-digits limit)
        raise APIError(400, "invalid_json", "a number in the body is too large") from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, "invalid_encoding", "the body holds an unpaired surrogate") from None
    return data


class TokenAuth:
    """Bearer tokens with two roles. Admin tokens may predict too."""

    def __init__(self, predict: frozenset[str], admin: frozenset[str]) -> None:
        self.predict = predict
        self.admin = admin

    @staticmethod
    def _bearer(header: str | None) -> str | None:
        if header and header[:7].lower() == "bearer ":
            return header[7:].strip() or None
        return None

    @staticmethod
    def _match(token: str, tokens: frozenset[str]) -> bool:
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens)

    def actor(self, header: str | None) -> str:
        """An audit name for the caller: a hash prefix, never the token."""
        token = self._bearer(header)
        return "anonymous" if token is None else "token:" + hashlib.sha256(token.encode()).hexdigest()[:10]

    def check(self, role: str, header: str | None) -> None:
        token = self._bearer(header)
        if role == "predict":
            if not self.predict:
                return  # predict is open unless tokens are configured
            if token is None:
                raise APIError(401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": "Bearer"})
            if not (self._match(token, self.predict) or self._match(token, self.admin)):
                raise APIError(401, "unauthorized", "unknown token", {"WWW-Authenticate": "Bearer"})
            return
        if not self.admin:
            raise APIError(403, "admin_disabled", "the admin API is off: set BEDSIDE_ADMIN_TOKENS")
        if token is None:
            raise APIError(401, "unauthorized", "an admin bearer token is required", {"WWW-Authenticate": "Bearer"})
        if self._match(token, self.admin):
            return
        if self._match(token, self.predict):
            raise APIError(403, "forbidden", "this token may predict but not administer")
        raise APIError(401, "unauthorized", "unknown token", {"WWW-Authenticate": "Bearer"})

"""API errors: a stable code, a human message, an HTTP status. Never request text."""

from __future__ import annotations


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def busy(message: str = "the service is at capacity; retry shortly", status: int = 429, retry_s: int = 1) -> APIError:
    return APIError(status, "overloaded", message, {"Retry-After": str(retry_s)})

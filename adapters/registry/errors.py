"""Registry errors: one stable ``code`` and an HTTP status each.

The CLI prints ``error [code]: message``; the service's admin API maps the same
objects to JSON bodies, so the two never disagree about what went wrong.
Messages describe the artifact or the store, never request text.
"""

from __future__ import annotations

import errno


class RegistryError(Exception):
    code = "registry_error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class InvalidRequest(RegistryError):
    """A task or version name that is not even well-formed (never used as a path)."""

    code = "invalid_request"


class InvalidArtifact(RegistryError):
    code = "invalid_artifact"


class UnexpectedFile(InvalidArtifact):
    code = "unexpected_file"


class ForbiddenConfig(InvalidArtifact):
    code = "forbidden_config"


class BaseMismatch(InvalidArtifact):
    code = "base_mismatch"


class TooLarge(InvalidArtifact):
    code = "too_large"
    http_status = 413


class NotFound(RegistryError):
    code = "not_found"
    http_status = 404


class Conflict(RegistryError):
    code = "conflict"
    http_status = 409


class NotServable(Conflict):
    code = "not_servable"


class SmokeFailed(RegistryError):
    code = "smoke_failed"
    http_status = 422


class StoreUnavailable(RegistryError):
    """The store cannot be written (disk full, read-only, permissions)."""

    code = "store_unavailable"

    def __init__(self, message: str, http_status: int = 503) -> None:
        super().__init__(message)
        self.http_status = http_status

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str) -> StoreUnavailable:
        # 507 Insufficient Storage for "full", 503 for "cannot write at all".
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = errno.errorcode.get(exc.errno or 0, "I/O error")
        what = "the store is full" if full else "the store is not writable or not reachable"
        return cls(f"{doing}: {what} ({reason})", 507 if full else 503)

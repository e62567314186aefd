"""Registry errors: one stable ``code`` and an HTTP status each.

The CLI prints ``error [code]: message``; the service's admin API maps the same
objects to JSON bodies, so the two never disagree about what went wrong.
Messages describe the artifact or the store, never request text.
"""

from __future__ import annotations

import errno
from typing import Any


class RegistryError(Exception):
    code = "registry_error"
    http_status = 400

    def __init_subclass__(cls, code: str = "", http_status: int = 0, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code or cls.code
        cls.http_status = http_status or cls.http_status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class InvalidRequest(RegistryError, code="invalid_request"):
    """A task or version name that is not even well-formed (never used as a path)."""


class InvalidArtifact(RegistryError, code="invalid_artifact"):
    """The artifact is malformed or inconsistent (manifest, files, tensors, examples)."""


class UnexpectedFile(InvalidArtifact, code="unexpected_file"):
    """A file outside the allow-list, a link, a folder or an archive."""


class ForbiddenConfig(InvalidArtifact, code="forbidden_config"):
    """An adapter_config.json with keys or values bedside does not serve."""


class BaseMismatch(InvalidArtifact, code="base_mismatch"):
    """The artifact was trained on another base, or its shapes do not fit the served one."""


class TooLarge(InvalidArtifact, code="too_large", http_status=413):
    """A file, header, tensor count or rank over its cap."""


class NotFound(RegistryError, code="not_found", http_status=404):
    """No such task, version or previous version."""


class Conflict(RegistryError, code="conflict", http_status=409):
    """The store's state forbids the change (the version is active, or the pointer moved)."""


class NotServable(Conflict, code="not_servable"):
    """A method that cannot join the shared base (full fine-tuning, IA3, prompts)."""


class SmokeFailed(RegistryError, code="smoke_failed", http_status=422):
    """The version did not answer its examples as recorded."""


class StoreUnavailable(RegistryError, code="store_unavailable"):
    """The store cannot be written (disk full, read-only, permissions)."""

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

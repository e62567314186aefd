"""Errors and warnings raised while reading training data."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file is missing, malformed or does not fit the task.

    The message starts with ``file:line:`` (line 1-based) when the problem is
    on one line, or ``file:`` when it concerns the whole file.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None):
        self.file = str(file) if file is not None else None
        self.line = line
        self.reason = message
        if self.file is not None and line is not None:
            message = f"{self.file}:{line}: {message}"
        elif self.file is not None:
            message = f"{self.file}: {message}"
        super().__init__(message)


class DataWarning(UserWarning):
    """Something in the data was adjusted or skipped (e.g. a split was made up)."""

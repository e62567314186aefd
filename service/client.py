"""A small typed client for hospital apps and data scientists (httpx).

Send whole notes as they are: the service reads them in windows and says how (``windows``,
``strategy`` in every answer); offsets are code points of the text sent (``text[start:end]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from .schemas import ExtractResponse, PredictResponse


class BedsideError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class BedsideClient:
    """``BedsideClient("http://host:3000", token=...)``; the token defaults to $BEDSIDE_TOKEN."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        token = token if token is not None else os.environ.get("BEDSIDE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Idle connections expire before the server's 5 s keep-alive timeout closes them, so a
        # request never races that close.
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BedsideClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise BedsideError(response.status_code, body.get("error", "http_error"), body.get("message", ""))
        return response.json()

    def predict(self, task: str, texts: list[str]) -> PredictResponse:
        return PredictResponse.model_validate(self._call("POST", "/predict", json={"task": task, "texts": texts}))

    def relations(self, items: list[dict], task: str = "relations") -> PredictResponse:
        """``items``: ``{"text": ..., "head": {"start", "end"}, "tail": {"start", "end"}}``."""
        return PredictResponse.model_validate(self._call("POST", "/predict", json={"task": task, "items": items}))

    def extract(self, text: str) -> ExtractResponse:
        return ExtractResponse.model_validate(self._call("POST", "/extract", json={"text": text}))

    def status(self) -> dict:
        return self._call("GET", "/status")

    def upload(self, folder: str | Path, task: str, activate: bool = False) -> dict:
        """Send an artifact folder's files to the admin API (validated and audited there)."""
        folder = Path(folder)
        files = sorted(p for p in folder.iterdir() if p.is_file())
        handles = [(p.name, p.open("rb")) for p in files]
        try:
            return self._call(
                "POST",
                f"/admin/adapters/{task}",
                params={"activate": str(activate).lower()},
                files=[("files", (name, fh, "application/octet-stream")) for name, fh in handles],
            )
        finally:
            for _, fh in handles:
                fh.close()

    def activate(self, task: str, version: str, expected: str | None = None) -> dict:
        """``expected``: the version you believe is active (or ``"none"``); 409 if it moved meanwhile."""
        return self._call("POST", f"/admin/adapters/{task}/{version}/activate", headers=_if_match(expected))

    def rollback(self, task: str, expected: str | None = None) -> dict:
        """One step back in the task's activation history (each call goes further back)."""
        return self._call("POST", f"/admin/adapters/{task}/rollback", headers=_if_match(expected))

    def deactivate(self, task: str, expected: str | None = None) -> dict:
        return self._call("POST", f"/admin/adapters/{task}/deactivate", headers=_if_match(expected))

    def shadow(self, task: str, version: str) -> dict:
        return self._call("POST", f"/admin/adapters/{task}/{version}/shadow")

    def canary(self, task: str, version: str, percent: float) -> dict:
        return self._call("POST", f"/admin/adapters/{task}/{version}/canary", params={"percent": percent})

    def promote(self, task: str, expected: str | None = None) -> dict:
        return self._call("POST", f"/admin/adapters/{task}/promote", headers=_if_match(expected))

    def abort(self, task: str) -> dict:
        return self._call("POST", f"/admin/adapters/{task}/abort")

    def shadow_report(self, task: str) -> dict:
        return self._call("GET", f"/admin/adapters/{task}/shadow")

    def delete(self, task: str, version: str) -> dict:
        return self._call("DELETE", f"/admin/adapters/{task}/{version}")


def _if_match(expected: str | None) -> dict[str, str]:
    return {} if expected is None else {"If-Match": expected}

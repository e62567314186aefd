"""Settings every bedside process shares, read from ``BEDSIDE_*`` here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PathSettings(BaseSettings):
    """Where bedside keeps its files (the service's settings extend these)."""

    model_config = SettingsConfigDict(env_prefix="BEDSIDE_", extra="ignore")

    store: Path | None = Field(
        None, description="adapter store (default: $XDG_DATA_HOME/bedside/store, else ~/.local/share/bedside/store)"
    )
    onnx_cache: Path | None = Field(None, description="exported ONNX graphs (default: ~/.cache/bedside/onnx)")

    def store_path(self) -> Path:
        if self.store is not None:
            return Path(self.store).expanduser()
        return _xdg("XDG_DATA_HOME", ".local/share") / "bedside" / "store"

    def onnx_cache_path(self) -> Path:
        if self.onnx_cache is not None:
            return Path(self.onnx_cache).expanduser()
        return _xdg("XDG_CACHE_HOME", ".cache") / "bedside" / "onnx"


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback).expanduser()

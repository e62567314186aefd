"""Request and response bodies of the HTTP API (shared with the Python client)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 1_000_000  # the schema's ceiling; the service's own limits (settings) are lower


class SpanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0", 0.0 and true are not 0
    start: int = Field(ge=0)
    end: int = Field(gt=0)


class PairItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0", 0.0 and true are not 0
    text: str = Field(max_length=MAX_TEXT_CHARS)
    head: SpanIn
    tail: SpanIn

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        return _check_text(text)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0", 0.0 and true are not 0
    task: str = Field(max_length=64)
    texts: list[str] | None = Field(None, min_length=1)
    items: list[PairItem] | None = Field(None, min_length=1)

    @field_validator("texts")
    @classmethod
    def _texts(cls, texts: list[str] | None) -> list[str] | None:
        return None if texts is None else [_check_text(t) for t in texts]


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0", 0.0 and true are not 0
    text: str = Field(max_length=MAX_TEXT_CHARS)

    @field_validator("text")
    @classmethod
    def _text(cls, text: str) -> str:
        return _check_text(text)


def _check_text(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
    if not text.strip():
        raise ValueError("text is empty or whitespace only")
    return text


class Provenance(BaseModel):
    task: str
    version: str
    sha256: str
    method: str
    base_fingerprint: str
    service_version: str
    backend: str


class PredictResponse(BaseModel):
    task: str
    results: list[dict[str, Any]]
    adapter: Provenance


class ExtractResponse(BaseModel):
    entities: list[dict[str, Any]]
    relations: list[dict[str, Any]]
    adapters: list[Provenance]

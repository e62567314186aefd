"""Request and response bodies of the HTTP API (shared with the Python client).

Offsets (``start``, ``end``) are Unicode code points of the text as sent, end exclusive:
``text[start:end]`` in Python (in JavaScript, count code points, not UTF-16 units).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OFFSET = "offset in Unicode code points of the text as sent"

MAX_TEXT_CHARS = 1_000_000  # the schema's ceiling; the service's own limits (settings) are lower


class SpanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "0", 0.0 and true are not 0
    start: int = Field(ge=0, description=OFFSET)
    end: int = Field(gt=0, description=OFFSET + " (exclusive)")


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


class Answer(BaseModel):
    """Response bodies: fields a newer server adds are ignored by an older client."""


class Provenance(Answer):
    task: str
    version: str = Field(description="the adapter version that answered (v1, v2, ...)")
    sha256: str
    method: str
    base_fingerprint: str
    service_version: str
    backend: str


class Reading(Answer):
    """How the input was read: every answer says it, nothing is cut silently."""

    windows: int = Field(description="model rows the text was read in")
    strategy: Literal["whole", "windows", "truncate", "head_tail", "chunks", "local window"] = Field(
        description="whole: one row; windows: overlapping windows (token tasks); truncate, head_tail, "
        "chunks: the sequence adapter's long-input strategy; local window: the pair's surroundings"
    )
    tokens_not_read: int | None = Field(None, description="truncate, head_tail: tokens of the note left unread")


class Classification(Reading):
    label: str
    probabilities: dict[str, float] = Field(description="every label's probability (they sum to 1)")


class Entity(Answer):
    text: str = Field(description="the note's own characters, text[start:end]")
    type: str
    start: int = Field(description=OFFSET)
    end: int = Field(description=OFFSET + " (exclusive)")
    score: float = Field(description="mean probability of the entity's word tags")


class Entities(Reading):
    entities: list[Entity]


class PredictResponse(Answer):
    """The task's answer for every text or item, and the adapter version that produced it."""

    task: str
    results: list[Classification | Entities] = Field(description="one per text or item, in order")
    adapter: Provenance


class Relation(Classification):
    head: int = Field(description="index into entities")
    tail: int = Field(description="index into entities")


class NoteReading(Answer):
    windows: int
    strategy: Literal["whole", "windows"]
    pairs: int = Field(
        description="candidate pairs sent to the relation adapter (i2b2 types, within a sentence or the set "
        "distance, and within one row of each other)"
    )
    pairs_too_far_apart: int | None = Field(
        None, description="pairs of candidate types and sentence whose entities could not share a row: not scored"
    )


class ExtractResponse(Answer):
    """Entities of the whole note, the relations among them, and the adapter versions used."""

    entities: list[Entity]
    relations: list[Relation] = Field(description="pairs with a label other than none")
    adapters: list[Provenance] = Field(description="ner's, then relations' when pairs were scored")
    note: NoteReading

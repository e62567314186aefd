"""Plain input records shared by loaders, training and serving.

Every loader turns its file format into one of these three shapes; the encoder
code in :mod:`adapters.encoding` turns them into model inputs. Labels are
strings; a task's label map turns them into indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A character span ``text[start:end]`` (end exclusive)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")


@dataclass
class TextExample:
    """A document or sentence with one label (sequence tasks)."""

    text: str
    label: str | None = None
    id: str | None = None


@dataclass
class TokenExample:
    """Whitespace-separated words with one BIO tag each (token tasks).

    The text the model sees is ``" ".join(words)``; :meth:`word_spans` gives
    each word's character span in that text.
    """

    words: list[str]
    tags: list[str] | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.tags)} tags")

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def word_spans(self) -> list[Span]:
        spans, pos = [], 0
        for word in self.words:
            spans.append(Span(pos, pos + len(word)))
            pos += len(word) + 1
        return spans


@dataclass
class PairExample:
    """Two entity spans in one text and the relation between them (pair tasks).

    ``head`` is the first argument of the relation as i2b2 writes it
    (treatment or test for Tr*/Te* relations), ``tail`` the second.
    """

    text: str
    head: Span
    tail: Span
    label: str | None = None
    id: str | None = None
    meta: dict = field(default_factory=dict)


Example = TextExample | TokenExample | PairExample

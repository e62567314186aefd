"""Whole annotated documents: a note's text, its sentences and its entities (and relations) as
character offsets. One JSON object per line::

    {"id": "...", "text": "...", "sentences": [[0, 57], ...],
     "entities": [[12, 24, "problem"], ...], "relations": [[0, 2, "TrAP"], ...]}

Offsets are code points of ``text``, end exclusive; relations name entities by index. Written by
the synthetic long-note generator and by joining the sentences of a CoNLL file into documents
(``bedside data documents``); read by ``bedside evaluate-notes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bedside.adapters.examples import TokenExample


@dataclass
class Document:
    id: str
    text: str
    sentences: list[tuple[int, int]] = field(default_factory=list)
    entities: list[tuple[int, int, str]] = field(default_factory=list)
    relations: list[tuple[int, int, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "text": self.text,
                "sentences": [list(s) for s in self.sentences],
                "entities": [list(e) for e in self.entities],
                "relations": [list(r) for r in self.relations],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> Document:
        data = json.loads(line)
        return cls(
            str(data["id"]),
            data["text"],
            [(int(s), int(e)) for s, e in data.get("sentences", [])],
            [(int(s), int(e), str(t)) for s, e, t in data.get("entities", [])],
            [(int(h), int(t), str(label)) for h, t, label in data.get("relations", [])],
        )

    def sentence_entities(self, index: int) -> list[tuple[int, int, str]]:
        """The entities inside sentence ``index``, offsets relative to the sentence."""
        start, end = self.sentences[index]
        return [(s - start, e - start, t) for s, e, t in self.entities if start <= s and e <= end]


class DocumentWriter:
    """Builds a document piece by piece: text, words with BIO tags, sentence boundaries."""

    def __init__(self, id: str) -> None:
        self.doc = Document(id, "")
        self._parts: list[str] = []
        self._length = 0

    def text(self, piece: str) -> None:
        self._parts.append(piece)
        self._length += len(piece)

    def sentence(self, words: Sequence[str], tags: Sequence[str] | None = None) -> list[int]:
        """Append ``words`` joined by spaces as one sentence; entities from ``tags`` (BIO). Returns
        the indices of the entities it added, in order."""
        start, added = self._length, []
        offsets = []
        for i, word in enumerate(words):
            if i:
                self.text(" ")
            offsets.append((self._length, self._length + len(word)))
            self.text(word)
        self.doc.sentences.append((start, self._length))
        for first, last, kind in bio_spans(tags or ["O"] * len(words)):
            added.append(len(self.doc.entities))
            self.doc.entities.append((offsets[first][0], offsets[last][1], kind))
        return added

    def finish(self) -> Document:
        self.doc.text = "".join(self._parts)
        return self.doc


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first word, last word, type) of each BIO entity (an I- without its B- starts one, as seqeval)."""
    spans: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        kind = tag[2:]
        if tag.startswith("I-") and spans and spans[-1][1] == i - 1 and spans[-1][2] == kind:
            spans[-1] = (spans[-1][0], i, kind)
        else:
            spans.append((i, i, kind))
    return spans


def join_sentences(
    examples: Iterable[TokenExample], tokens: int, count: Callable[[str], int], prefix: str = "doc"
) -> list[Document]:
    """Documents of about ``tokens`` tokens (``count``: a sentence's tokens) from consecutive
    sentences, in their order, separated by one space; a document ends once it reaches ``tokens``."""
    docs: list[Document] = []
    writer, used = DocumentWriter(f"{prefix}-{len(docs) + 1:04d}"), 0
    for example in examples:
        if used:
            writer.text(" ")
        writer.sentence(example.words, example.tags)
        used += count(" ".join(example.words))
        if used >= tokens:
            docs.append(writer.finish())
            writer, used = DocumentWriter(f"{prefix}-{len(docs) + 1:04d}"), 0
    if used:
        docs.append(writer.finish())
    return docs


def write_documents(path: Path, docs: Iterable[Document]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for doc in docs:
            out.write(doc.to_json() + "\n")
            n += 1
    return n


def read_documents(path: Path) -> list[Document]:
    with path.open(encoding="utf-8") as f:
        return [Document.from_json(line) for line in f if line.strip()]

"""Words, sentences and offsets of raw clinical text, in code points of the original string.

A word is a run of letters and digits (joined by ``-`` or ``'``) or one other visible
character. Combining marks belong to the word they follow (a decomposed ``é`` stays one
word), and invisible format characters (soft hyphens, zero-width spaces and joiners, word
joiners, byte-order marks) neither end a word nor reach the model: the model sees
:attr:`Word.text`, the answer's offsets cover the original characters.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .examples import Span

COMBINING = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
INVISIBLE = "\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff"
_PART = rf"\w|[{COMBINING}]"  # a word character, or a combining mark (it belongs to its word)
_RUN = rf"(?:{_PART})(?:[{INVISIBLE}]*(?:{_PART}))*"  # invisible characters only inside a word
WORD = re.compile(rf"{_RUN}(?:[-'](?:{_RUN}))*|[^\s{INVISIBLE}{COMBINING}]")
_DROP = dict.fromkeys(range(0x200B, 0x2010)) | dict.fromkeys(range(0x2060, 0x2065))
_DROP.update({0xAD: None, 0x180E: None, 0xFEFF: None})
# A sentence ends at a line break, and after . ! ? (and closing quotes or brackets) followed by
# white space, unless a lower-case word follows a period attached to its word (an abbreviation:
# "C. diff", "pt. was seen"). A ! or ? and a period standing alone between spaces (transcripts,
# tokenised text: "it hurts . so , how long") end one whatever follows: no abbreviation is there.
SENTENCE_END = re.compile(r"(?:(?<=\s)\.|[!?])[\"')\]]*(?=\s|$)|\.[\"')\]]*(?=\s+(?![a-z])|\s*$)|\n")


@dataclass(frozen=True)
class Word:
    text: str  # what the model reads (invisible characters removed)
    span: Span  # where it is in the original text


def split_words(text: str) -> list[tuple[str, Span]]:
    """Words and punctuation of ``text`` with their spans in it (i2b2-like tokens)."""
    return [(m.group().translate(_DROP), Span(m.start(), m.end())) for m in WORD.finditer(text)]


COUNT_CHUNK = 4096  # characters per counting call: the GIL is free between calls (the event loop runs)


def text_chunks(text: str, size: int = COUNT_CHUNK) -> Iterator[tuple[int, int]]:
    """``(start, end)`` pieces of ``text`` of at most ``size`` characters, cut after a space or
    line break, where no word can continue; a run of ``size`` characters without one is cut
    where it ends."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = cut + 1 if cut > start else end
        yield start, end
        start = end


def count_words(text: str, enough: int | None = None, pause: Callable[[], None] | None = None) -> int:
    """How many words :func:`split_words` would find, without building them (the regex engine's
    own loop: a cap is checked in milliseconds on 100 KB, before any word is made), read in
    :func:`text_chunks` (a cut inside a run adds at most one word). Stops once past ``enough``
    (the count is then partial, but over it); ``pause`` is called between chunks."""
    count = 0
    for start, end in text_chunks(text):
        count += len(WORD.findall(text, start, end))
        if enough is not None and count > enough:
            break
        if pause is not None and end < len(text):
            pause()
    return count


def sentence_span(text: str, ends: list[int], at: int) -> Span:
    """The sentence (or line) holding character ``at``, white space around it left out; ``ends``
    are the ends of :data:`SENTENCE_END` matches in ``text`` (:func:`sentence_ends`)."""
    k = bisect_right(ends, at)
    start, end = (ends[k - 1] if k else 0), (ends[k] if k < len(ends) else len(text))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def sentence_ends(text: str) -> list[int]:
    return [m.end() for m in SENTENCE_END.finditer(text)]


def sentence_ids(text: str, spans: list[Span]) -> list[int]:
    """The sentence (or line) each word belongs to, numbered from 0 in text order."""
    ends = sentence_ends(text)
    ids, sentence, cursor = [], 0, 0
    for span in spans:
        while cursor < len(ends) and ends[cursor] <= span.start:
            cursor += 1
            sentence += 1
        ids.append(sentence)
    # renumber densely: empty sentences (blank lines) leave no gaps
    dense: dict[int, int] = {}
    return [dense.setdefault(i, len(dense)) for i in ids]

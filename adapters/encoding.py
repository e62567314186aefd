"""Tokenisation for every task kind: the one path training and serving share.

An :class:`Encoder` turns an example (or a raw request) into an :class:`EncodedRow`
of token ids plus what its head needs: nothing for sequence tasks, the first
sub-token of each word for token tasks, and the positions of the two entity
markers for pair tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from .examples import Example, Span
from .limits import EntitiesTooFar
from .tasks import TaskKind, TaskSpec
from .text import split_words, text_chunks
from .windows import LongInput

IGNORE_INDEX = -100  # positions without a label (sub-tokens, specials, padding)

# Pair tasks: entity markers inserted around the two arguments. Plain characters
# that every BERT vocabulary has, so the shared base needs no new embeddings.
HEAD_MARKERS = ("<", ">")
TAIL_MARKERS = ("[", "]")

__all__ = ["IGNORE_INDEX", "EncodedRow", "Encoder", "TooLongError", "mark_entities", "pad_rows", "split_words"]


class TooLongError(ValueError):
    """The input has more tokens than the task allows and truncation is off."""

    def __init__(self, n_tokens: int, max_length: int) -> None:
        super().__init__(f"input has {n_tokens} tokens; the limit is {max_length}")
        self.n_tokens = n_tokens
        self.max_length = max_length


@dataclass
class EncodedRow:
    """One model input row and the metadata its head needs."""

    input_ids: list[int]
    kind: TaskKind
    label: int | list[int] | None = None  # sequence/pair: class id; token: per position
    word_starts: list[int] | None = None  # token: position of each kept word's first piece
    word_index: list[int] | None = None  # token: which word each start belongs to (some words have no pieces)
    n_words: int = 0  # token: words in the input (kept or not)
    markers: tuple[int, int] | None = None  # pair: positions of the head and tail markers
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


class Encoder:
    """Tokenises examples of one task for one tokenizer and length limit."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        task: TaskSpec,
        max_length: int = 128,
        truncate: bool = True,
        long_input: LongInput | None = None,
    ) -> None:
        if max_length < 8:
            raise ValueError("max_length must be at least 8")
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.truncate = truncate
        self.long_input = long_input or LongInput()

    def reads_like(self, other: Encoder) -> bool:
        """True when ``other`` turns every input into the same rows (two versions of one task
        usually do: a shadow version then reuses the active version's rows)."""
        return (
            self.tokenizer is other.tokenizer
            and self.task == other.task
            and self.max_length == other.max_length
            and self.truncate == other.truncate
            and self.long_input == other.long_input
        )

    @property
    def room(self) -> int:
        """Tokens of input a row holds besides the special tokens."""
        return self.max_length - self.tokenizer.num_special_tokens_to_add()

    @property
    def unknown_id(self) -> int | None:
        return self.tokenizer.unk_token_id

    def body_ids(self, text: str) -> list[int]:
        """The text's token ids without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str, enough: int | None = None, pause: Callable[[], None] | None = None) -> int:
        """A lower bound on ``len(body_ids(text))``, counted in :func:`text_chunks` so that a caller
        can pause between them and stop once past ``enough``. WordPiece splits at white space, so
        its count is exact there; a cut inside a run, or a tokenizer whose pieces carry the space
        before them, may add a token per cut, so one is taken off per cut."""
        count, cuts = 0, -1
        for start, end in text_chunks(text):
            count, cuts = count + len(self.body_ids(text[start:end])), cuts + 1
            if enough is not None and count - cuts > enough:
                break
            if pause is not None and end < len(text):
                pause()
        return max(0, count - cuts)

    def word_pieces(self, words: list[str], on_count: Callable[[int], None] | None = None) -> list[list[int]]:
        """The token ids of each word (empty for a word the tokenizer drops). ``on_count`` hears the
        token count first, before any per-token work (a budget refuses there)."""
        if not words:
            return []
        enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        if on_count is not None:
            on_count(len(enc["input_ids"]))
        pieces: list[list[int]] = [[] for _ in words]
        for token, word in zip(enc["input_ids"], enc.word_ids()):
            if word is not None:
                pieces[word].append(token)
        return pieces

    def wrap(self, ids: list[int]) -> list[int]:
        """Special tokens around a row's ids, as the tokenizer adds them to a single text."""
        prefix, suffix = self._specials
        return [*prefix, *ids, *suffix]

    @property
    def lead(self) -> int:
        """Special tokens before a row's first input token (BERT: 1, [CLS])."""
        return len(self._specials[0])

    @functools.cached_property
    def _specials(self) -> tuple[list[int], list[int]]:
        """What the tokenizer puts before and after a single text (BERT: [CLS] and [SEP])."""
        body = self.body_ids("a")
        full = list(self.tokenizer("a", add_special_tokens=True)["input_ids"])
        at = next(i for i in range(len(full) - len(body) + 1) if full[i : i + len(body)] == body)
        return full[:at], full[at + len(body) :]

    # -- public -------------------------------------------------------------
    def encode(self, example: Example) -> EncodedRow:
        """A training example of this encoder's task kind -> one row (the kind's strategy decides how)."""
        from .kinds import strategy

        return strategy(self.task.kind).encode(self, example)

    def with_limits(self, max_length: int | None = None, truncate: bool | None = None) -> Encoder:
        """The same tokenisation with other limits (per-request options never change a shared encoder)."""
        if (max_length is None or max_length == self.max_length) and (truncate is None or truncate == self.truncate):
            return self
        return Encoder(
            self.tokenizer,
            self.task,
            max_length or self.max_length,
            self.truncate if truncate is None else truncate,
            self.long_input,
        )

    def encode_text(self, text: str, label: str | None = None) -> EncodedRow:
        ids = self._ids(text)
        ids, truncated = self._fit(ids)
        return EncodedRow(
            input_ids=ids,
            kind=TaskKind.sequence,
            label=None if label is None else self.task.label_id(label),
            truncated=truncated,
        )

    def encode_words(self, words: list[str], tags: list[str] | None = None) -> EncodedRow:
        if not words:
            raise ValueError("a token-task input needs at least one word")
        enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=True)
        ids, word_ids = list(enc["input_ids"]), enc.word_ids()
        truncated = len(ids) > self.max_length
        if truncated:
            self._check_truncation(len(ids))
            ids = ids[: self.max_length - 1] + [ids[-1]]
            word_ids = word_ids[: self.max_length - 1] + [None]
        # A word the tokenizer drops (control or format characters, lone accents) has no
        # pieces: record each start's word so tags never shift onto the next word.
        starts, indices, seen = [], [], set()
        for pos, word in enumerate(word_ids):
            if word is not None and word not in seen:
                seen.add(word)
                starts.append(pos)
                indices.append(word)
        labels = None
        if tags is not None:
            labels = [IGNORE_INDEX] * len(ids)
            for word, pos in zip(indices, starts):
                labels[pos] = self.task.label_id(tags[word])
        return EncodedRow(
            input_ids=ids,
            kind=TaskKind.token,
            label=labels,
            word_starts=starts,
            word_index=indices,
            n_words=len(words),
            truncated=truncated,
        )

    def encode_pair(
        self, text: str, head: Span, tail: Span, label: str | None = None, strict: bool = False
    ) -> EncodedRow:
        """``strict`` (serving): a long input is windowed around the two markers, and refused when
        they cannot both be in one row (a relation is never scored with an entity cut away)."""
        marked, head_at, tail_at = mark_entities(text, head, tail)
        enc = self.tokenizer(marked, return_offsets_mapping=True, add_special_tokens=True)
        ids = list(enc["input_ids"])
        starts = {start: pos for pos, (start, end) in enumerate(enc["offset_mapping"]) if end > start}
        try:
            markers = (starts[head_at], starts[tail_at])
        except KeyError:
            raise ValueError("entity markers were not kept as tokens by this tokenizer") from None
        ids, markers, truncated = self._window(ids, markers, strict)
        return EncodedRow(
            input_ids=ids,
            kind=TaskKind.pair,
            label=None if label is None else self.task.label_id(label),
            markers=markers,
            truncated=truncated,
        )

    # -- helpers ------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _check_truncation(self, n_tokens: int) -> None:
        if not self.truncate:
            raise TooLongError(n_tokens, self.max_length)

    def _fit(self, ids: list[int]) -> tuple[list[int], bool]:
        if len(ids) <= self.max_length:
            return ids, False
        self._check_truncation(len(ids))
        return ids[: self.max_length - 1] + [ids[-1]], True

    def _window(
        self, ids: list[int], markers: tuple[int, int], strict: bool = False
    ) -> tuple[list[int], tuple[int, int], bool]:
        """Cut a long pair input to a window that keeps both markers when it can."""
        if len(ids) <= self.max_length:
            return ids, markers, False
        room = self.max_length - 2
        if not strict:
            self._check_truncation(len(ids))
        elif max(markers) - min(markers) >= room:
            raise EntitiesTooFar(
                f"the two entities are {max(markers) - min(markers)} tokens apart; one row holds {room}"
            )
        cls, body, sep = ids[0], ids[1:-1], ids[-1]
        lo_marker, hi_marker = min(markers) - 1, max(markers) - 1  # positions in body
        start = max(0, min(lo_marker, hi_marker - room + 1, len(body) - room))
        window = body[start : start + room]
        moved = tuple(min(max(m - 1 - start, 0), room - 1) + 1 for m in markers)
        return [cls, *window, sep], (moved[0], moved[1]), True


def mark_entities(text: str, head: Span, tail: Span) -> tuple[str, int, int]:
    """Insert markers around head and tail; return the text and each opening marker's offset."""
    if head.end > len(text) or tail.end > len(text):
        raise ValueError("entity span outside the text")
    if not (head.end <= tail.start or tail.end <= head.start):
        raise ValueError("head and tail entities overlap")
    inserts = sorted(
        [
            (head.start, HEAD_MARKERS[0] + " ", "head"),
            (head.end, " " + HEAD_MARKERS[1], None),
            (tail.start, TAIL_MARKERS[0] + " ", "tail"),
            (tail.end, " " + TAIL_MARKERS[1], None),
        ],
        key=lambda item: (item[0], item[2] is not None),  # a closing marker before an opening one
    )
    pieces, offsets, cursor, length = [], {}, 0, 0
    for at, marker, role in inserts:
        pieces.append(text[cursor:at])
        length += at - cursor
        if role is not None:
            offsets[role] = length
        pieces.append(marker)
        length += len(marker)
        cursor = at
    pieces.append(text[cursor:])
    return "".join(pieces), offsets["head"], offsets["tail"]


def pad_rows(rows: Sequence[EncodedRow], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad rows to the longest: int64 ids and a 0/1 attention mask (torch and ONNX alike)."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row.input_ids
        mask[i, : len(row)] = 1
    return ids, mask

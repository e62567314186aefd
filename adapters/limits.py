"""What one request may ask of the model, and the errors that say which limit it passed.

Limits are per request (all its texts or items together): tokens and words, so a note of any
length up to the cap is answered and one over it is refused with 413 before any forward; a
text that is mostly ``[UNK]`` (long digit or emoji runs, a script the vocabulary lacks) is
refused with 422 rather than answered from nothing. Messages carry numbers only, never text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InputLimits:
    max_tokens: int = 32768  # per request, before windowing
    max_words: int = 65536  # per request
    max_unknown_share: float = 0.5  # of a text's tokens
    stride: float = 0.5  # consecutive windows start this share of a window apart
    max_pairs: int = 2000  # relation candidates per /extract note
    pair_distance_chars: int = 0  # relation candidates also across sentences this close (0: same sentence)
    pair_max_words: int = 48  # relation candidates at most this many words apart (0: any one row holds)


class InputRefused(ValueError):
    status = 422
    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputTooLarge(InputRefused):
    status = 413
    code = "too_large"


class MostlyUnknown(InputRefused):
    code = "mostly_unknown"


class EntitiesTooFar(InputRefused):
    code = "entities_too_far"


@dataclass
class Budget:
    """Tokens and words a request has used so far, refused as soon as either passes its cap."""

    limits: InputLimits = field(default_factory=InputLimits)
    tokens: int = 0
    words: int = 0
    # Called between pieces of counting a text that might be refused (the service waits there
    # for a running forward: admitted work first, refusals in the gaps).
    pause: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def tokens_left(self) -> int:
        return self.limits.max_tokens - self.tokens

    @property
    def words_left(self) -> int:
        return self.limits.max_words - self.words

    def could_pass(self, chars: int) -> bool:
        """Whether a text of ``chars`` characters might pass the token cap (a word piece covers at
        least one character): only such a text needs counting before its words are built."""
        return chars > self.tokens_left

    def might_refuse(self, chars: int) -> bool:
        """Whether a text of ``chars`` characters might pass either cap (a word is at least one
        character too)."""
        return self.could_pass(chars) or chars > self.words_left

    def spend(self, tokens: int = 0, words: int = 0) -> None:
        self.words += words
        if self.words > self.limits.max_words:
            raise InputTooLarge(f"the request has over {self.limits.max_words} words; send fewer or shorter texts")
        self.check(tokens)
        self.tokens += tokens

    def check(self, tokens: int) -> None:
        """Refuse if ``tokens`` more would pass the cap, without spending them (an early count)."""
        if self.tokens + tokens > self.limits.max_tokens:
            raise InputTooLarge(
                f"the request has over {self.limits.max_tokens} tokens ({self.tokens + tokens} so far); "
                "send fewer or shorter texts"
            )


def check_unknown(ids: list[int], unknown_id: int | None, limits: InputLimits) -> None:
    """Refuse a text whose tokens are mostly the tokenizer's unknown token."""
    if unknown_id is None or not ids:
        return
    unknown = ids.count(unknown_id)
    if unknown and unknown / len(ids) > limits.max_unknown_share:
        raise MostlyUnknown(
            f"{unknown} of the text's {len(ids)} tokens are unknown to the model "
            "(long runs of digits or symbols, or a script it was not trained on)"
        )

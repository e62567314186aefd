"""Request budgets: caps refuse as early and as cheaply as they can, and only over the cap."""

from __future__ import annotations

import pytest

from bedside.adapters.encoding import Encoder
from bedside.adapters.kinds import strategy
from bedside.adapters.kinds import token as token_kind
from bedside.adapters.limits import Budget, InputLimits, InputTooLarge
from bedside.adapters.tasks import PRESETS


def test_check_refuses_without_spending():
    budget = Budget(InputLimits(max_tokens=10))
    budget.check(tokens=10)
    assert budget.tokens == 0
    with pytest.raises(InputTooLarge, match="over 10 tokens"):
        budget.check(tokens=11)
    budget.spend(tokens=6)
    with pytest.raises(InputTooLarge):
        budget.spend(tokens=5)


def test_token_cap_refuses_a_note_before_any_word_is_built(tiny, monkeypatch):
    encoder = Encoder(tiny.tokenizer, PRESETS["ner"], 16)
    text = "patient with fever " * 40  # 120 words, 120 tokens
    budget = Budget(InputLimits(max_tokens=100))

    def no_words(_text):
        raise AssertionError("words were built for a text over the token cap")

    monkeypatch.setattr(token_kind, "split_words", no_words)
    with pytest.raises(InputTooLarge, match="over 100 tokens"):
        strategy("token").encode_request(encoder, text, budget)
    assert budget.tokens == 0


def test_a_note_under_the_token_cap_is_counted_once(tiny):
    encoder = Encoder(tiny.tokenizer, PRESETS["ner"], 16)
    text = "patient with fever " * 40
    n = len(encoder.body_ids(text))
    budget = Budget(InputLimits(max_tokens=n))  # characters over the cap, tokens exactly at it
    assert budget.could_pass(len(text))
    item = strategy("token").encode_request(encoder, text, budget)
    assert budget.tokens == n and item.windows > 1

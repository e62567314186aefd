"""Whole notes through the service in process: a 30k-token note in bounded memory, the cap above
it, and relation candidates that never cross a sentence."""

from __future__ import annotations

import random

import pytest

from bedside.training.synth_long import long_note

WORDS = ["patient", "with", "fever", "and", "cough", "was", "given", "aspirin", "."]  # one tiny token each


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def note_of(tokens: int) -> str:
    """A note of ``tokens`` one-token words in sentences of nine, a line break every fifth."""
    words = [WORDS[i % len(WORDS)] for i in range(tokens)]
    sentences = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
    return "".join(s + ("\n" if k % 5 == 4 else " ") for k, s in enumerate(sentences)).strip()


@pytest.fixture()
def served(make_client):
    return make_client()


def test_a_30k_token_note_is_answered_in_bounded_memory(served):
    client, engine = served
    note = note_of(30_000)
    assert len(engine.runtime.states["ner"].resident.spec.labels) > 1
    client.post("/predict", json={"task": "ner", "texts": [note_of(2_000)]})  # warm: first-use allocations
    before = rss_mb()
    for task in ("ner", "mortality", "length_of_stay"):
        r = client.post("/predict", json={"task": task, "texts": [note]})
        assert r.status_code == 200, (task, r.text[:300])
        (result,) = r.json()["results"]
        assert result["windows"] >= 1 and result["strategy"] != "whole"
    grown = rss_mb() - before
    ner = client.post("/predict", json={"task": "ner", "texts": [note]}).json()["results"][0]
    assert ner["windows"] > 200  # every part of the note was read
    assert all(note[e["start"] : e["end"]] == e["text"] for e in ner["entities"])
    # The note's text, its rows and their logits are a few MB; a forward is one batch of rows at a
    # time. 200 MB would mean the whole note's activations were held at once.
    assert grown < 200, f"RSS grew by {grown:.0f} MB for one 30k-token note"


def test_a_note_over_the_token_cap_is_413_with_the_reason(served):
    client, engine = served
    cap = engine.limits.max_tokens
    r = client.post("/predict", json={"task": "ner", "texts": [note_of(cap + 2_000)]})
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"] == "too_large" and f"{cap}" in r.json()["message"]
    r = client.post("/extract", json={"text": note_of(cap + 2_000)})
    assert r.status_code == 413


def test_relation_candidates_never_cross_a_sentence(served):
    _, engine = served
    for seed in range(5):
        doc = long_note(random.Random(seed), "n", 600)
        entities = [{"start": s, "end": e, "type": t} for s, e, t in doc.entities]
        sentence_of = [
            next(k for k, (s, e) in enumerate(doc.sentences) if s <= es and ee <= e) for es, ee, _ in doc.entities
        ]
        pairs, _ = engine.candidates(doc.text, entities)
        assert pairs, "a note of 600 words has candidate pairs"
        assert all(sentence_of[i] == sentence_of[j] for i, j in pairs)
        # and every annotated relation (all within a sentence) is among the candidates
        assert {tuple(sorted((h, t))) for h, t, _ in doc.relations} <= {tuple(sorted(p)) for p in pairs}


def transcript_turn(seed: int = 0) -> tuple[str, list[dict]]:
    """One unpunctuated transcript turn: a single "sentence" of ~1,000 words, 60 entities in it."""
    rng = random.Random(seed)
    filler = ["okay", "so", "yeah", "the", "um", "right", "well"]
    words, entities = [], []
    for _ in range(60):
        words += [rng.choice(filler) for _ in range(rng.randint(1, 40))]
        kind = rng.choice(["problem", "treatment", "test"])
        start = len(" ".join(words)) + (1 if words else 0)
        words.append({"problem": "edema", "treatment": "lasix", "test": "ekg"}[kind])
        entities.append({"start": start, "end": start + len(words[-1]), "type": kind})
    text = " ".join(words)
    assert all(text[e["start"] : e["end"]] in ("edema", "lasix", "ekg") for e in entities)
    return text, entities


def test_pairs_too_far_apart_for_one_row_are_no_candidates_and_would_be_refused(served, monkeypatch):
    from dataclasses import replace

    from bedside.adapters.limits import EntitiesTooFar

    _, engine = served
    monkeypatch.setattr(engine, "limits", replace(engine.limits, pair_max_words=0))  # the row's bound alone
    text, entities = transcript_turn()
    slot = engine.runtime.states["relations"].resident.slot
    predictor = engine.predictor(slot)
    room = predictor.encoder.room
    everything, _ = engine.candidates(text, entities)
    kept, far = engine.candidates(text, entities, room)
    assert far > 0 and len(kept) + far == len(everything) and set(kept) <= set(everything)
    for i, j in set(everything) - set(kept):  # every pair left out is one its row would refuse
        item = {"text": text, "head": {"start": entities[i]["start"], "end": entities[i]["end"]}}
        item["tail"] = {"start": entities[j]["start"], "end": entities[j]["end"]}
        with pytest.raises(EntitiesTooFar):
            predictor.encode(item)


def test_pairs_more_words_apart_than_the_setting_are_no_candidates(served, monkeypatch):
    from dataclasses import replace

    _, engine = served
    text, entities = transcript_turn(1)
    words_before = [len(text[: e["start"]].split()) for e in entities]
    monkeypatch.setattr(engine, "limits", replace(engine.limits, pair_max_words=0))
    everything, none_far = engine.candidates(text, entities)
    monkeypatch.setattr(engine, "limits", replace(engine.limits, pair_max_words=30))
    kept, far = engine.candidates(text, entities)
    assert none_far == 0 and 0 < len(kept) < len(everything) and len(kept) + far == len(everything)
    for i, j in everything:
        assert ((i, j) in kept) == (abs(words_before[i] - words_before[j]) < 30)

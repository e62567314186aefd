"""Whole notes through the task kinds: windows, each word's tag, entities across windows, offsets."""

from __future__ import annotations

import pytest
import torch

from bedside.adapters.encoding import Encoder
from bedside.adapters.interface import Slot, predict_rows
from bedside.adapters.kinds import strategy
from bedside.adapters.limits import Budget
from bedside.adapters.predict import Predictor
from bedside.adapters.tasks import PRESETS
from bedside.adapters.text import split_words
from bedside.adapters.windows import best_windows, token_chunks, word_windows
from tests.helpers import four_task_model

NER = PRESETS["ner"]
SENTENCES = [  # nine one-token words each (the tiny vocabulary's): one sentence fills one 16-token row
    "patient with fever and cough was given aspirin .",
    "chest pain improved after heparin was started .",
    "blood culture showed sepsis and insulin held .",
]


def tags_of(predictor, text):
    item = predictor.encode(text)
    logits = predict_rows(predictor.model, item.rows, [predictor.name] * item.windows)
    kept, tags, _ = predictor.kind.word_tags(predictor.task, item, logits)
    return item, dict(zip(kept, tags))


def test_windows_of_whole_sentences_tag_each_word_as_its_sentence_alone(fresh_tiny):
    predictor = Predictor(four_task_model(fresh_tiny), "ner", max_length=16)
    sentences = [SENTENCES[i % 3] for i in range(12)]
    note = "\n".join(sentences)
    item, note_tags = tags_of(predictor, note)
    assert item.windows == 12 and item.strategy == "windows"
    word = 0
    for sentence in sentences:
        alone, tags = tags_of(predictor, sentence)
        assert alone.windows == 1
        for i in range(len(split_words(sentence))):
            assert note_tags[word] == tags[i], (sentence, i)
            word += 1


class Tagger:
    """An AdapterModel that tags by token: ``acute`` B-problem, ``pneumonia`` I-problem, all else O."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.slots = {"ner": Slot("ner", NER, encoder)}
        vocab = encoder.tokenizer.get_vocab()
        self.begin, self.inside = vocab["acute"], vocab["pneumonia"]

    def run(self, batch):
        out = []
        for row in batch.rows:
            logits = torch.full((len(row.word_starts), NER.num_labels), -5.0)
            for k, position in enumerate(row.word_starts):
                token = row.input_ids[position]
                label = "B-problem" if token == self.begin else "I-problem" if token == self.inside else "O"
                logits[k, NER.label_id(label)] = 5.0
            out.append(logits)
        return out


def answer(model, text):
    predictor = Predictor(model, "ner")
    return predictor.predict([text])[0]


def test_an_entity_across_a_window_boundary_is_found_once_with_exact_offsets(tiny):
    encoder = Encoder(tiny.tokenizer, NER, max_length=16)
    model = Tagger(encoder)
    filler = ["fever", "and", "cough", "with", "pain"] * 12  # one long sentence: overlapping windows
    pieces = [1] * (len(filler) + 2)
    for at in range(2, len(filler)):
        windows = word_windows(pieces, [0] * len(pieces), encoder.room)
        best = best_windows(windows, pieces)
        if best[at] != best[at + 1]:  # "acute" and "pneumonia" would be tagged by different windows
            break
    words = filler[:at] + ["acute", "pneumonia"] + filler[at:]
    text = " ".join(words)
    out = answer(model, text)
    assert out["windows"] > 2
    (entity,) = out["entities"]
    start = text.index("acute pneumonia")
    assert (entity["text"], entity["start"], entity["end"]) == ("acute pneumonia", start, start + 15)


def test_offsets_are_code_points_of_the_original_text(tiny):
    model = Tagger(Encoder(tiny.tokenizer, NER, max_length=16))
    text = "Note:\tfever 😀\n\ncafe\u0301 résumé then acute pneu\u00admonia\u200d, then acute\tpneumonia."
    out = answer(model, text)
    found = [(e["text"], e["start"], e["end"]) for e in out["entities"]]
    first, second = text.index("acute pneu"), text.index("acute\tpneumonia")
    assert found == [("acute pneu\u00admonia", first, first + 16), ("acute\tpneumonia", second, second + 15)], found
    assert all(text[e["start"] : e["end"]] == e["text"] for e in out["entities"])


def test_long_sequence_reading_is_stated_and_chunks_cover_the_note(tiny):
    from bedside.adapters.windows import LongInput

    kind = strategy("sequence")
    text = " ".join(SENTENCES * 6)
    for how, expected in (("truncate", "truncate"), ("head_tail", "head_tail"), ("chunks", "chunks:mean")):
        encoder = Encoder(tiny.tokenizer, PRESETS["mortality"], 16, long_input=LongInput(strategy=how))
        item = kind.encode_request(encoder, text, Budget())
        assert item.strategy == expected
        assert all(len(row) <= 16 for row in item.rows)
    n = len(encoder.body_ids(text))
    assert token_chunks(n, 14)[-1][1] == n and item.windows == len(token_chunks(n, 14))


def test_pair_items_read_each_pair_in_the_sentence_that_holds_it():
    import random

    from bedside.adapters.kinds import note_pairs, pair_items
    from bedside.training.synth_long import long_note

    for seed in range(3):
        doc = long_note(random.Random(seed), "n", 400)
        entities = [{"start": s, "end": e, "type": t} for s, e, t in doc.entities]
        pairs = note_pairs(doc.text, entities)
        items = pair_items(doc.text, entities, pairs)
        assert len(items) == len(pairs) > 0
        for (i, j), item in zip(pairs, items):
            lo, hi = min(entities[i]["start"], entities[j]["start"]), max(entities[i]["end"], entities[j]["end"])
            s, e = next((s, e) for s, e in doc.sentences if s <= lo and hi <= e)
            # the sentence, not the note around it (a list line's dash or a run-in header at most)
            assert doc.text[s:e].strip() in item["text"]
            assert len(item["text"]) <= e - s + len("HOSPITAL COURSE, DAY 10: ")
            for key, k in (("head", i), ("tail", j)):
                span = item[key]
                assert item["text"][span["start"] : span["end"]] == doc.text[entities[k]["start"] : entities[k]["end"]]


def test_a_pair_across_sentences_reads_both_sentences_and_what_lies_between():
    from bedside.adapters.kinds import pair_items

    text = "Fever since Monday.\nNo cough. Tylenol was given for the fever.\n"
    entities = [{"start": 0, "end": 5, "type": "problem"}, {"start": 30, "end": 37, "type": "treatment"}]
    (item,) = pair_items(text, entities, [(1, 0)])
    assert item["text"] == "Fever since Monday.\nNo cough. Tylenol was given for the fever."
    assert item["text"][item["head"]["start"] : item["head"]["end"]] == "Tylenol"
    assert item["text"][item["tail"]["start"] : item["tail"]["end"]] == "Fever"


def _random_note(rng, n_words: int, n_entities: int):
    words = [rng.choice(["so", "the", "and", "then", "x-ray", "."]) for _ in range(n_words)]
    text = " ".join(words)
    offsets, pos = [], 0
    for word in words:
        offsets.append((pos, pos + len(word)))
        pos += len(word) + 1
    picked = sorted(rng.sample(range(n_words), n_entities))
    types = ["problem", "treatment", "test"]
    entities = [{"start": offsets[k][0], "end": offsets[k][1], "type": rng.choice(types)} for k in picked]
    return text, entities


@pytest.mark.parametrize("seed", range(6))
def test_bounded_candidates_are_the_pairs_within_reach_and_count_the_rest(seed):
    """The bounded walk keeps exactly the i2b2 candidates within the bound and counts the others."""
    import random
    import re
    from bisect import bisect_left
    from dataclasses import replace

    from bedside.adapters.kinds import note_candidates, note_pairs
    from bedside.adapters.limits import InputLimits

    rng = random.Random(seed)
    text, entities = _random_note(rng, 400, 120)
    runs = [m.start() for m in re.finditer(r"\w+", text)]
    at = [bisect_left(runs, e["start"]) for e in entities]
    for chars in (0, 40):
        limits = replace(InputLimits(), pair_distance_chars=chars, pair_max_words=rng.choice([0, 10, 30]))
        room = rng.choice([None, 16, 50])
        everything = note_pairs(text, entities, chars)
        kept, far = note_candidates(text, entities, limits, room)
        bound = min([b for b in (room, limits.pair_max_words) if b], default=None)
        expected = [(i, j) for i, j in everything if bound is None or abs(at[i] - at[j]) < bound]
        assert kept == expected and far == len(everything) - len(kept)


def test_thousands_of_entities_in_one_sentence_visit_only_the_pairs_within_reach(monkeypatch):
    """An unpunctuated text of 3,000 entities: the walk looks at pairs within the bound only (it
    looked at all 4.5 million, for seconds on the event loop)."""
    from bedside.adapters.kinds import PairKind, note_candidates
    from bedside.adapters.limits import InputLimits

    words = ["fever" if k % 2 else "lasix" for k in range(3000)]
    text = " ".join(words)
    entities, pos = [], 0
    for word in words:
        entities.append({"start": pos, "end": pos + len(word), "type": "problem" if word == "fever" else "treatment"})
        pos += len(word) + 1
    looked = []
    real = PairKind.oriented.__func__
    monkeypatch.setattr(PairKind, "oriented", classmethod(lambda cls, *a: looked.append(1) or real(cls, *a)))
    kept, far = note_candidates(text, entities, InputLimits(pair_max_words=48))
    assert len(looked) <= 3000 * 48 and len(kept) + far == 1500 * 1500 + 1500 * 1499 // 2

import pytest

from bedside.adapters.encoding import IGNORE_INDEX, Encoder, TooLongError, mark_entities, split_words
from bedside.adapters.examples import PairExample, Span, TextExample, TokenExample
from bedside.adapters.tasks import PRESETS


def test_split_words_keeps_character_offsets():
    text = "BP 90/60, denies chest-pain."
    words = split_words(text)
    assert [w for w, _ in words] == ["BP", "90", "/", "60", ",", "denies", "chest-pain", "."]
    assert all(text[s.start : s.end] == w for w, s in words)


def test_mark_entities_in_either_order():
    text = "edema improved with lasix"
    marked, head_at, tail_at = mark_entities(text, Span(20, 25), Span(0, 5))
    assert marked == "[ edema ] improved with < lasix >"
    assert marked[head_at] == "<" and marked[tail_at] == "["
    with pytest.raises(ValueError, match="overlap"):
        mark_entities(text, Span(0, 5), Span(3, 8))


def test_token_labels_sit_on_first_sub_tokens(tiny):
    enc = Encoder(tiny.tokenizer, PRESETS["ner"], max_length=64)
    row = enc.encode(TokenExample(["hypokalemia", "treated"], ["B-problem", "O"]))
    assert len(row.word_starts) == 2 and row.word_starts[0] == 1
    labelled = [i for i, label in enumerate(row.label) if label != IGNORE_INDEX]
    assert labelled == row.word_starts


def test_pair_markers_point_at_marker_tokens(tiny):
    enc = Encoder(tiny.tokenizer, PRESETS["relations"], max_length=64)
    row = enc.encode(PairExample("lasix was given for edema", Span(0, 5), Span(20, 25), "TrAP"))
    tokens = tiny.tokenizer.convert_ids_to_tokens(row.input_ids)
    assert tokens[row.markers[0]] == "<" and tokens[row.markers[1]] == "["
    assert row.label == PRESETS["relations"].label_id("TrAP")


def test_long_pair_keeps_both_markers_in_the_window(tiny):
    enc = Encoder(tiny.tokenizer, PRESETS["relations"], max_length=24)
    text = "filler " * 30 + "lasix was given for edema" + " filler" * 30
    start = text.index("lasix")
    row = enc.encode_pair(text, Span(start, start + 5), Span(start + 20, start + 25))
    tokens = tiny.tokenizer.convert_ids_to_tokens(row.input_ids)
    assert row.truncated and len(row) == 24
    assert tokens[row.markers[0]] == "<" and tokens[row.markers[1]] == "["


def test_too_long_is_an_error_unless_truncation_is_on(tiny):
    text = "fever " * 100
    strict = Encoder(tiny.tokenizer, PRESETS["mortality"], max_length=16, truncate=False)
    with pytest.raises(TooLongError, match="limit is 16"):
        strict.encode(TextExample(text))
    row = Encoder(tiny.tokenizer, PRESETS["mortality"], max_length=16).encode(TextExample(text, "died"))
    assert row.truncated and len(row) == 16 and row.label == 1


def test_wrong_example_kind_is_refused(tiny):
    with pytest.raises(TypeError, match="cannot encode"):
        Encoder(tiny.tokenizer, PRESETS["ner"]).encode(TextExample("text"))


def test_count_words_in_chunks_matches_split_words():
    import random

    from bedside.adapters.text import COUNT_CHUNK, count_words

    pieces = ["ab", "é", "e\u0301", "x-y", "don't", " ", "\n", "\t", "!", "12", "\u200b", "a\u00adb", "😀"]
    rng = random.Random(1)
    for _ in range(40):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3 * COUNT_CHUNK)))
        assert count_words(text) == len(split_words(text))
    assert count_words("!?" * COUNT_CHUNK) == 2 * COUNT_CHUNK  # no space to cut after: cut where the chunk ends


def test_counting_stops_past_enough_and_pauses_between_pieces():
    from bedside.adapters.text import COUNT_CHUNK, count_words, text_chunks

    pauses = []
    text = "ab " * (4 * COUNT_CHUNK)
    pieces = list(text_chunks(text))
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text) and len(pieces) > 4
    assert all(text[end - 1] == " " for _, end in pieces)  # cut after a space
    assert count_words(text, pause=lambda: pauses.append(1)) == 4 * COUNT_CHUNK
    assert len(pauses) == len(pieces) - 1  # between pieces, never after the last
    pauses.clear()
    partial = count_words(text, enough=COUNT_CHUNK, pause=lambda: pauses.append(1))
    per_piece = COUNT_CHUNK // 3 + 1
    assert COUNT_CHUNK < partial <= COUNT_CHUNK + per_piece  # over enough: it stopped there
    assert len(pauses) == partial // per_piece


def test_token_count_in_pieces_is_a_lower_bound_exact_at_white_space(tiny):
    from bedside.adapters.text import COUNT_CHUNK, text_chunks

    enc = Encoder(tiny.tokenizer, PRESETS["ner"])
    note = "Pt with hypokalemia, treated: KCl 40 mEq.\n" * 600  # cut only after spaces and line breaks
    cuts = len(list(text_chunks(note))) - 1
    assert enc.count_tokens(note) == len(enc.body_ids(note)) - cuts  # WordPiece: exact, less one per cut
    pauses = []
    assert enc.count_tokens(note, enough=100, pause=lambda: pauses.append(1)) > 100
    assert len(pauses) <= 1  # past enough within the first pieces: stopped
    run = "hypokalemia" * COUNT_CHUNK  # no white space: cut inside the run, one token taken off per cut
    assert 1 <= enc.count_tokens(run) <= len(enc.body_ids(run))


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        # a transcript turn, lower case with detached punctuation: each . and ? ends a sentence
        ("[doctor] it hurts . so , how long ? about four days .\n[patient] yes", 4),
        # attached periods before a lower-case word are abbreviations; a capital starts a sentence
        ("C. diff was seen. pt. was seen. Then he left! why? fine", 4),
        ("e.g. the dose was 5 mg. He left", 2),
        ("Temp 38.5 today, 1.2 mg/dL", 1),
    ],
)
def test_sentences_of_notes_and_transcripts(text, sentences):
    from bedside.adapters.text import sentence_ids

    spans = [span for _, span in split_words(text)]
    ids = sentence_ids(text, spans)
    assert ids == sorted(ids) and ids[0] == 0
    assert max(ids) + 1 == sentences, list(zip([w for w, _ in split_words(text)], ids))

"""Whole annotated documents: synthetic long notes, CoNLL sentences joined, whole vs sentence F1."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from typer.testing import CliRunner

from bedside.adapters.examples import TokenExample
from bedside.training.documents import Document, bio_spans, join_sentences, read_documents
from bedside.training.note_eval import compare, span_scores
from bedside.training.synth import write_synthetic
from bedside.training.synth_long import MAX_WORDS, MIN_WORDS, long_note, note_lengths


def test_long_notes_have_sections_lines_and_exact_annotations():
    rng = random.Random(3)
    for words in (MIN_WORDS, 900, MAX_WORDS):
        doc = long_note(rng, "n", words)
        n_words = len(doc.text.split())
        assert words <= n_words <= words + 80, (words, n_words)
        assert doc.text.count("\n\n") >= 3 and doc.text.count(":\n") + doc.text.count(": ") >= 3  # sections
        assert doc.entities and doc.relations
        for start, end, kind in doc.entities:
            span = doc.text[start:end]
            assert span == span.strip() and span and kind in {"problem", "test", "treatment"}
            assert start == 0 or not doc.text[start - 1].isalnum()
            assert end == len(doc.text) or not doc.text[end].isalnum()
        for s, e in doc.sentences:  # every entity sits in one sentence
            assert doc.text[s:e] == doc.text[s:e].strip()
        assert all(any(s <= es and ee <= e for s, e in doc.sentences) for es, ee, _ in doc.entities), (
            "an entity outside its sentence"
        )
        for head, tail, label in doc.relations:
            assert 0 <= head < len(doc.entities) and 0 <= tail < len(doc.entities) and label


def test_note_lengths_span_the_range():
    lengths = note_lengths(random.Random(0), 400)
    assert MIN_WORDS <= min(lengths) < 400 and 2200 < max(lengths) <= MAX_WORDS


def test_long_notes_leave_the_other_files_unchanged(tmp_path):
    def digests(folder):
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    plain = digests(write_synthetic(tmp_path / "a", seed=4, size=30)["ner"].parent)
    paths = write_synthetic(tmp_path / "b", seed=4, size=30, long_notes=6)
    both = digests(paths["ner"].parent)
    assert {k: v for k, v in both.items() if not k.startswith("notes/")} == plain
    assert [len(read_documents(paths["notes"] / f"{s}.jsonl")) for s in ("train", "val", "test")] == [4, 1, 1]
    again = write_synthetic(tmp_path / "c", seed=4, size=30, long_notes=6)
    assert (again["notes"] / "train.jsonl").read_bytes() == (paths["notes"] / "train.jsonl").read_bytes()


def test_joined_sentences_keep_order_offsets_and_size():
    examples = [
        TokenExample(["Aspirin", "for", "chest", "pain", "."], ["B-Chemical", "O", "B-Disease", "I-Disease", "O"]),
        TokenExample(["No", "fever", "."], ["O", "B-Disease", "O"]),
        TokenExample(["Heparin", "was", "held", "."], ["B-Chemical", "O", "O", "O"]),
    ]
    docs = join_sentences(examples, tokens=7, count=lambda text: len(text.split()))
    assert [d.id for d in docs] == ["doc-0001", "doc-0002"]
    first, second = docs
    assert first.text == "Aspirin for chest pain . No fever ." and second.text == "Heparin was held ."
    assert [first.text[s:e] for s, e, _ in first.entities] == ["Aspirin", "chest pain", "fever"]
    assert [first.text[s:e] for s, e in first.sentences] == ["Aspirin for chest pain .", "No fever ."]
    assert first.sentence_entities(1) == [(3, 8, "Disease")]
    assert Document.from_json(first.to_json()) == first


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-a", "I-a", "O", "B-a", "B-a"], [(0, 1, "a"), (3, 3, "a"), (4, 4, "a")]),
        (["I-a", "I-a", "I-b"], [(0, 1, "a"), (2, 2, "b")]),  # a stray I- starts an entity, as seqeval
        (["O", "O"], []),
    ],
)
def test_bio_spans(tags, spans):
    assert bio_spans(tags) == spans


def test_span_scores_are_strict_micro_and_per_type():
    gold = [{(0, 5, "a"), (6, 9, "b")}, {(0, 3, "a")}]
    pred = [{(0, 5, "a"), (6, 8, "b")}, {(0, 3, "a"), (4, 6, "a")}]
    scores = span_scores(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["per_type"]["a"]["f1"] == pytest.approx(0.8) and scores["per_type"]["b"]["f1"] == 0.0


def test_whole_documents_against_sentences_on_a_tiny_adapter(fresh_tiny):
    from bedside.adapters.predict import Predictor
    from tests.helpers import four_task_model

    docs = [long_note(random.Random(i), f"n{i}", 300) for i in range(2)]
    result = compare(Predictor(four_task_model(fresh_tiny), "ner", max_length=32), docs)
    assert result["documents"] == 2 and result["entities"] == sum(len(d.entities) for d in docs)
    assert result["windows_per_document"]["min"] > 10  # whole notes, many windows each
    for reading in ("whole_document", "sentence_by_sentence"):
        assert 0.0 <= result[reading]["f1"] <= 1.0
    assert result["f1_points_whole_minus_sentences"] == pytest.approx(
        100 * (result["whole_document"]["f1"] - result["sentence_by_sentence"]["f1"])
    )


def test_cli_documents_and_evaluate_notes(tmp_path, served_folder):
    import typer

    from bedside.training.cli_data import app as data_app
    from bedside.training.cli_notes import evaluate_notes
    from tests.helpers import save_task_artifacts

    conll = tmp_path / "test.tsv"
    conll.write_text("chest\tB-problem\npain\tI-problem\n.\tO\n\nfever\tB-problem\n.\tO\n\n" * 30)
    docs = tmp_path / "docs.jsonl"
    runner = CliRunner()
    r = runner.invoke(
        data_app,
        ["documents", "--conll", str(conll), "--out", str(docs), "--tokens", "40", "--backbone", str(served_folder)],
    )
    assert r.exit_code == 0, r.output
    assert len(read_documents(docs)) > 1
    artifact = save_task_artifacts(tmp_path / "art", tasks=["ner"])["ner"]
    app = typer.Typer()
    app.command()(evaluate_notes)
    out = tmp_path / "scores.json"
    r = runner.invoke(
        app, ["--adapter", str(artifact), "--docs", str(docs), "--backbone", str(served_folder), "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert set(json.loads(out.read_text())) >= {"whole_document", "sentence_by_sentence", "windows_per_document"}
    mortality = save_task_artifacts(tmp_path / "art2", tasks=["mortality"])["mortality"]
    r = runner.invoke(app, ["--adapter", str(mortality), "--docs", str(docs), "--backbone", str(served_folder)])
    assert r.exit_code == 2 and "not a token task" in r.output

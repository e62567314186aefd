"""Entity F1 of a token adapter on whole documents, read as the service reads them (overlapping
windows, each word tagged where it has most context) against the same adapter on each sentence
alone: what reading a whole note costs or gains.

Scores are strict: an entity counts when its start, end and type all match the gold one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tqdm import tqdm

from bedside.adapters.predict import Predictor

from .documents import Document

Span = tuple[int, int, str]


def span_scores(gold: Iterable[set[Span]], pred: Iterable[set[Span]]) -> dict:
    """Micro precision, recall and F1 over all documents, overall and per entity type."""
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        n_gold.update(s[2] for s in g)
        n_pred.update(s[2] for s in p)
        tp.update(s[2] for s in g & p)

    def prf(t: int, ng: int, np_: int) -> dict:
        precision = t / np_ if np_ else 0.0
        recall = t / ng if ng else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": ng}

    types = sorted(set(n_gold) | set(n_pred))
    return {
        **prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values())),
        "per_type": {t: prf(tp[t], n_gold[t], n_pred[t]) for t in types},
    }


def _entities(answer: dict, shift: int = 0) -> set[Span]:
    return {(e["start"] + shift, e["end"] + shift, e["type"]) for e in answer["entities"]}


def whole_document(predictor: Predictor, docs: Sequence[Document]) -> tuple[list[set[Span]], list[int]]:
    """Each document in one request, as /predict answers it: its entities and its window count."""
    found, windows = [], []
    for doc in tqdm(docs, desc="whole documents", unit="doc"):
        (answer,) = predictor.predict([doc.text])
        found.append(_entities(answer))
        windows.append(answer["windows"])
    return found, windows


def sentence_by_sentence(predictor: Predictor, docs: Sequence[Document], batch: int = 32) -> list[set[Span]]:
    """Each sentence of each document on its own, offsets mapped back into the document."""
    found = []
    for doc in tqdm(docs, desc="sentence by sentence", unit="doc"):
        spans: set[Span] = set()
        for at in range(0, len(doc.sentences), batch):
            part = doc.sentences[at : at + batch]
            answers = predictor.predict([doc.text[s:e] for s, e in part])
            for (start, _), answer in zip(part, answers):
                spans |= _entities(answer, start)
        found.append(spans)
    return found


def compare(predictor: Predictor, docs: Sequence[Document]) -> dict:
    gold = [set(doc.entities) for doc in docs]
    whole, windows = whole_document(predictor, docs)
    alone = sentence_by_sentence(predictor, docs)
    scores = {"whole_document": span_scores(gold, whole), "sentence_by_sentence": span_scores(gold, alone)}
    return {
        **scores,
        "f1_points_whole_minus_sentences": 100
        * (scores["whole_document"]["f1"] - scores["sentence_by_sentence"]["f1"]),
        "documents": len(docs),
        "sentences": sum(len(d.sentences) for d in docs),
        "entities": sum(len(g) for g in gold),
        "windows_per_document": {"min": min(windows), "mean": sum(windows) / len(windows), "max": max(windows)},
    }

"""Synthetic i2b2 2010 sentences and records: concepts, relations from trigger templates,
and the CoNLL and BLUE-style files made from them (see :mod:`bedside.training.synth`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from bedside.adapters.kinds import PAIR
from bedside.adapters.tasks import NO_RELATION
from bedside.training import synth_lexicon as L

from .synth_common import fill, pronouns, weighted

RELATION_WEIGHTS = (
    ("TrAP", 0.22),
    ("TeRP", 0.22),
    ("PIP", 0.16),
    ("TeCP", 0.09),
    ("TrCP", 0.09),
    ("TrIP", 0.08),
    ("TrWP", 0.07),
    ("TrNAP", 0.07),
)
SENTENCE_KIND_WEIGHTS = (("relation", 0.5), ("compound", 0.12), ("plain", 0.23), ("empty", 0.15))
SLOT_TYPES = {"pr": "problem", "te": "test", "tr": "treatment"}
TURN_SHARE = 0.2  # lines written as a transcribed visit's turns: the service reads dictations too
SMALL_TALK_SHARE = 0.5  # of those, turns with no entities at all


# --------------------------------------------------------------------------
# i2b2 sentences and records
# --------------------------------------------------------------------------


@dataclass
class Sentence:
    """One tokenised line with its concepts (start, end inclusive, type) and relations."""

    tokens: list[str]
    concepts: list[tuple[int, int, str]] = field(default_factory=list)
    relations: list[tuple[int, str, int]] = field(default_factory=list)  # concept indices


def _realize(
    rng: random.Random,
    template: str,
    pro: dict[str, str],
    links: tuple[tuple[str, str, str], ...] = (),
    opener: float = 0.2,
) -> Sentence:
    """Fill a template's slots with lexicon concepts; ``links`` name related slots."""
    fills = {"pr": rng.sample(L.PROBLEMS, 3), "te": rng.sample(L.TESTS, 2), "tr": rng.sample(L.TREATMENTS, 2)}
    pieces = template.split(" ")
    if rng.random() < opener:
        pieces = rng.choice(L.OPENERS).split(" ") + pieces
    sentence, slot_concept = Sentence(tokens=[]), {}
    for piece in pieces:
        name = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        if name is not None and name.rstrip("23") in SLOT_TYPES:
            kind = name.rstrip("23")
            number = int(name[-1]) - 1 if name[-1] in "23" else 0
            words = fills[kind][number].split(" ")
            start = len(sentence.tokens)
            slot_concept[name] = len(sentence.concepts)
            sentence.concepts.append((start, start + len(words) - 1, SLOT_TYPES[kind]))
            sentence.tokens.extend(words)
        elif name is not None:
            sentence.tokens.append(fill(rng, piece, pro))
        else:
            sentence.tokens.append(piece)
    first = sentence.tokens[0]
    sentence.tokens[0] = first[:1].upper() + first[1:]
    sentence.relations = [(slot_concept[a], rel, slot_concept[b]) for a, rel, b in links]
    return sentence


def _relation_sentence(rng: random.Random, pro: dict[str, str]) -> Sentence:
    shape = weighted(rng, SENTENCE_KIND_WEIGHTS)
    if shape == "relation":
        rel = weighted(rng, RELATION_WEIGHTS)
        template = rng.choice(L.RELATION_TEMPLATES[rel])
        first = "pr" if rel == "PIP" else "te" if rel.startswith("Te") else "tr"
        second = "pr2" if rel == "PIP" else "pr"
        return _realize(rng, template, pro, ((first, rel, second),))
    if shape == "compound":
        template, links = rng.choice(L.COMPOUND_TEMPLATES)
        return _realize(rng, template, pro, links)
    if shape == "plain":
        return _realize(rng, rng.choice(L.NO_RELATION_TEMPLATES), pro)
    return _realize(rng, rng.choice(L.NO_ENTITY_SENTENCES), pro, opener=0.0)


def _turn(rng: random.Random, pro: dict[str, str]) -> Sentence:
    """A transcript turn (``[ doctor ] uh , she was given lasix for edema .``): small talk with no
    entities, or a sentence lower-cased after a spoken filler, its concepts and relations kept.
    Taught to the demo adapters so fillers, speaker tags and lower case are no entities."""
    speaker = rng.choice(L.SPEAKERS).split(" ")
    if rng.random() < SMALL_TALK_SHARE:
        return Sentence(tokens=speaker + rng.choice(L.CONVERSATION).split(" "))
    sentence = _relation_sentence(rng, pro)
    prefix = speaker + rng.choice(L.FILLERS).split(" ")
    return Sentence(
        tokens=prefix + [t.lower() for t in sentence.tokens],
        concepts=[(a + len(prefix), b + len(prefix), kind) for a, b, kind in sentence.concepts],
        relations=sentence.relations,
    )


def _record(rng: random.Random) -> list[Sentence]:
    pro = pronouns(rng.choice("MF"))
    n_lines = rng.randint(5, 15)
    lines: list[Sentence] = []
    if rng.random() < 0.5:
        date = f"{rng.randint(2005, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        lines += [Sentence(tokens=L.RECORD_HEADERS[0].split(" ")), Sentence(tokens=[date])]
    while len(lines) < n_lines:
        lines.append(_turn(rng, pro) if rng.random() < TURN_SHARE else _relation_sentence(rng, pro))
    return lines


def _concept_ref(sentence: Sentence, line_no: int, index: int) -> str:
    start, end, _ = sentence.concepts[index]
    text = " ".join(sentence.tokens[start : end + 1]).lower()
    return f'c="{text}" {line_no}:{start} {line_no}:{end}'


def _write_record(root: Path, name: str, lines: list[Sentence]) -> None:
    con, rel = [], []
    for line_no, sentence in enumerate(lines, start=1):
        for index, (_, _, kind) in enumerate(sentence.concepts):
            con.append(f'{_concept_ref(sentence, line_no, index)}||t="{kind}"')
        for a, label, b in sentence.relations:
            rel.append(f'{_concept_ref(sentence, line_no, a)}||r="{label}"||{_concept_ref(sentence, line_no, b)}')
    for sub, suffix, body in (
        ("txt", "txt", [" ".join(s.tokens) for s in lines]),
        ("concept", "con", con),
        ("rel", "rel", rel),
    ):
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(line + "\n" for line in body)
        (folder / f"{name}.{suffix}").write_text(text, encoding="utf-8", newline="\n")


def bio_tags(sentence: Sentence) -> list[str]:
    tags = ["O"] * len(sentence.tokens)
    for start, end, kind in sentence.concepts:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end + 1):
            tags[i] = f"I-{kind}"
    return tags


def candidate_pairs(sentence: Sentence) -> list[tuple[int, int, str]]:
    """i2b2 candidates (treatment/test-problem, problem-problem) as (first, second, label)."""
    related = {}
    for a, label, b in sentence.relations:
        related[(min(a, b), max(a, b))] = label
    pairs = []
    for head, tail in PAIR.candidate_pairs([concept[2] for concept in sentence.concepts]):
        i, j = min(head, tail), max(head, tail)
        pairs.append((i, j, related.get((i, j), NO_RELATION)))
    return pairs


def masked_text(sentence: Sentence, i: int, j: int) -> str:
    """The sentence with concepts ``i`` and ``j`` replaced by ``@type$`` masks."""
    masks = {sentence.concepts[k][0]: k for k in (i, j)}
    out, pos = [], 0
    while pos < len(sentence.tokens):
        if pos in masks:
            start, end, kind = sentence.concepts[masks[pos]]
            out.append(f"@{kind}$")
            pos = end + 1
        else:
            out.append(sentence.tokens[pos])
            pos += 1
    return " ".join(out)


def _write_ner(path: Path, sentences: list[Sentence]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for sentence in sentences:
            for token, tag in zip(sentence.tokens, bio_tags(sentence)):
                f.write(f"{token}\t{tag}\n")
            f.write("\n")


def _write_relations(path: Path, sentences: list[Sentence]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for sentence in sentences:
            for i, j, label in candidate_pairs(sentence):
                f.write(f"{masked_text(sentence, i, j)}\t{label}\n")

"""The benchmark workload: clinical-style notes of about 100 tokens, one per request, for
every task in turn (the same texts for the service, the in-process model and the baseline)."""

from __future__ import annotations

import random

PHRASES = [
    "patient admitted with septic shock",
    "intubated in the icu",
    "started on iv vancomycin and zosyn",
    "chest pain radiating to the left arm",
    "troponin elevated on arrival",
    "ecg showed st depression",
    "treated with aspirin and heparin",
    "history of heart failure and diabetes",
    "creatinine worsened overnight",
    "fever and productive cough",
    "ct scan showed right lower lobe pneumonia",
    "lasix given for edema",
    "blood pressure stable on metoprolol",
    "denies shortness of breath",
    "wound healing well",
    "discharged to rehab with physical therapy",
    "family meeting held regarding goals of care",
    "lactate trending down after fluids",
    "urine culture grew e coli",
    "mri of the brain was unremarkable",
]
REL_PAIRS = [
    ("lasix", "edema"),
    ("aspirin", "chest pain"),
    ("ct scan", "pneumonia"),
    ("vancomycin", "septic shock"),
    ("metoprolol", "heart failure"),
]
TASKS = ("mortality", "length_of_stay", "ner", "relations")


def note(rng: random.Random, words: int = 64) -> str:
    """Phrases up to ``words`` words (64: about 100 word pieces for the embedded default);
    always at least one phrase."""
    parts: list[str] = [rng.choice(PHRASES)]
    while True:
        phrase = rng.choice(PHRASES)
        if sum(len(p.split()) for p in parts) + len(phrase.split()) > words:
            return " , ".join(parts) + " ."
        parts.append(phrase)


def relation_item(rng: random.Random, words: int = 64) -> dict:
    head, tail = rng.choice(REL_PAIRS)
    context = [note(rng, words // 2), note(rng, words // 2)] if words >= 20 else ["", ""]  # short: the pair only
    text = f"{context[0]} {head} was given for {tail} . {context[1]}".strip()
    start = text.index(f"{head} was given for {tail}")
    tail_start = start + len(head) + len(" was given for ")
    return {
        "text": text,
        "head": {"start": start, "end": start + len(head)},
        "tail": {"start": tail_start, "end": tail_start + len(tail)},
    }


def requests(n: int, seed: int = 0, words: int = 64) -> list[tuple[str, object]]:
    """``n`` (task, item) pairs cycling through the four tasks; an item is a text or a pair item."""
    rng = random.Random(seed)
    return [
        (task, relation_item(rng, words) if task == "relations" else note(rng, words))
        for task in (TASKS[i % len(TASKS)] for i in range(n))
    ]


def body(task: str, item) -> dict:
    return {"task": task, "items": [item]} if task == "relations" else {"task": task, "texts": [item]}

"""Deterministic synthetic clinical text, written in the real file formats.

:func:`write_synthetic` writes, under one output folder::

    mortality/{train,val,test}.csv        id,text,hospital_expire_flag   (van Aken MIMIC)
    length_of_stay/{train,val,test}.csv   id,text,los_label              (same admissions)
    i2b2/{split}/txt/record-NNN.txt       one sentence per line, tokens split by spaces
    i2b2/{split}/concept/record-NNN.con   c="chest pain" 5:3 5:4||t="problem"
    i2b2/{split}/rel/record-NNN.rel       c="lasix" 5:0 5:0||r="TrAP"||c="edema" 5:3 5:3
    ner/{split}.tsv                       CoNLL BIO, token<TAB>tag, blank line between sentences
    relations/{split}.tsv                 BLUE style: masked sentence<TAB>label, one line per
                                          candidate pair (label "none" when unrelated)

Admission notes get their mortality label from a latent risk score that sums the
weights of what the note says (severe findings, chronic disease, vitals, labs, age,
code status) plus noise, thresholded at a quantile, with a few labels redrawn at random.
Negated severe findings ("no evidence of septic shock") carry no risk, so a bag of
words is good but not perfect. Length of stay is a log-normal number of days whose
mean rises with ICU admission, procedures, surgery, complications and social
factors. The i2b2 sentences come from templates whose trigger words decide the
relation type. Only ``random.Random(seed)`` is used, so a seed gives byte-identical
files.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from bedside.adapters.kinds import PAIR
from bedside.adapters.tasks import NO_RELATION
from bedside.training import synth_lexicon as L

SPLITS = ("train", "val", "test")
FORMATS = ("mortality", "length_of_stay", "i2b2", "ner", "relations")

POSITIVE_QUANTILE = 0.88  # share of admissions below the death threshold
# With this probability a label is redrawn at the base rate (random flips). Flipping
# a fixed share of all labels instead would swamp the rare positive class.
LABEL_NOISE_RATE = 0.1
LOS_BAND_UPPER_DAYS = (3.0, 7.0, 14.0)  # bands 0..3: <=3, 3-7, 7-14, >14 days

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


def split_counts(n: int) -> tuple[int, int, int]:
    """70/15/15 split of ``n`` items with at least one item per split."""
    if n < 3:
        raise ValueError(f"need at least 3 items to split, got {n}")
    n_val = max(1, round(n * 0.15))
    n_test = max(1, round(n * 0.15))
    return n - n_val - n_test, n_val, n_test


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in pairs], weights=[w for _, w in pairs])[0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pronouns(sex: str) -> dict[str, str]:
    if sex == "M":
        return {"he": "he", "He": "He", "his": "his", "him": "him"}
    return {"he": "she", "He": "She", "his": "her", "him": "her"}


def _fill(rng: random.Random, template: str, pro: dict[str, str]) -> str:
    return template.format(n=rng.randint(2, 9), nn=rng.randint(10, 60), x=round(rng.uniform(2.5, 6.0), 1), **pro)


# --------------------------------------------------------------------------
# Admission notes
# --------------------------------------------------------------------------


@dataclass
class _Note:
    """An admission note being built: its sections and the two latent scores."""

    rng: random.Random
    pro: dict[str, str]
    sections: list[str] = field(default_factory=list)
    risk: float = 0.0
    log_los: float = 0.0

    def add(self, header: str, sentences: list[str]) -> None:
        self.sections.append(f"{header}: " + " ".join(sentences))

    def fill(self, template: str) -> str:
        return _fill(self.rng, template, self.pro)

    @property
    def text(self) -> str:
        return " ".join(self.sections)


def _vitals(note: _Note, acuity: float, intubated: bool) -> str:
    rng = note.rng
    temp = rng.gauss(37.0 + 0.35 * acuity, 0.5)
    hr = round(rng.gauss(86 + 12 * acuity, 11))
    sbp = round(rng.gauss(128 - 16 * acuity, 14))
    dbp = round(sbp * rng.uniform(0.5, 0.68))
    rr = round(max(10.0, rng.gauss(18 + 3 * acuity, 3)))
    spo2 = round(min(100.0, rng.gauss(96 - 3.5 * max(acuity, 0.0), 2.5)))
    note.risk += 0.8 * (sbp < 90) + 0.8 * (spo2 < 88) + 0.4 * (hr > 125) + 0.4 * (rr > 28)
    note.risk += 0.3 * (temp > 39.0 or temp < 35.5)
    if intubated:
        support = "on AC ventilation"
    elif spo2 < 88:
        support = "on nonrebreather"
    elif spo2 < 93:
        support = f"on {rng.randint(2, 6)}L NC"
    else:
        support = "on RA"
    return f"Vitals: T {temp:.1f} HR {hr} BP {sbp}/{dbp} RR {rr} SpO2 {spo2}% {support}."


def _exam(note: _Note, band: int, acuity: float, intubated: bool) -> list[str]:
    rng = note.rng
    general, weight = rng.choice(L.EXAM_GENERAL[band])
    if intubated:
        general, weight = "Intubated and sedated.", 0.8
    note.risk += weight
    if band == 2 and rng.random() < 0.6:
        gcs = rng.randint(3, 8)
    elif acuity > 0.8 and rng.random() < 0.4:
        gcs = rng.randint(9, 13)
    else:
        gcs = rng.choice((14, 15, 15, 15))
    note.risk += 1.2 * (gcs <= 8) + 0.4 * (9 <= gcs <= 13)
    parts = [general, f"GCS {gcs}."]
    for pool in rng.sample((L.EXAM_LUNGS, L.EXAM_CV, L.EXAM_ABD, L.EXAM_EXT), rng.randint(1, 3)):
        parts.append(rng.choice(pool))
    return parts


def _labs(note: _Note, acuity: float) -> str:
    rng = note.rng
    high = max(acuity, 0.0)
    values = {
        "WBC": round(max(1.0, rng.gauss(9 + 4 * high, 3)), 1),
        "Hgb": round(rng.gauss(12.5 - 1.2 * high, 1.6), 1),
        "Plt": round(max(8.0, rng.gauss(240 - 50 * high, 70))),
        "Na": round(rng.gauss(138 - 1.5 * high, 3)),
        "K": round(rng.gauss(4.2 + 0.2 * high, 0.5), 1),
        "Cr": round(max(0.4, rng.gauss(1.0 + 0.7 * high, 0.4)), 1),
        "lactate": round(max(0.5, rng.gauss(1.4 + 1.5 * high, 0.7)), 1),
    }
    note.risk += 0.7 * (values["lactate"] > 4) + 0.3 * (values["Cr"] > 3) + 0.3 * (values["Plt"] < 50)
    names = [name for name in values if name in ("lactate", "Cr") or rng.random() < 0.5]
    return "Labs notable for " + ", ".join(f"{name} {values[name]}" for name in names) + "."


def _hpi(note: _Note, age: int, sex: str, cc: str, pmh: list[str], acuity: float) -> tuple[list[str], bool]:
    rng = note.rng
    person = "man" if sex == "M" else "woman"
    history = f" with a history of {', '.join(pmh[:2])}" if pmh else ""
    sentences, intubated = [], False
    n_severe = sum(rng.random() < _sigmoid(2.0 * acuity - 2.6) for _ in range(3))
    for phrase, weight in rng.sample(L.SEVERE_EVENTS, n_severe):
        sentences.append(note.fill(phrase))
        note.risk += weight
        intubated = intubated or "intubated" in phrase
    for phrase, weight in rng.sample(L.BENIGN_EVENTS, rng.randint(1, 2)):
        sentences.append(note.fill(phrase))
        note.risk += weight
    said = " ".join([cc] + pmh + sentences).lower()
    for phrase, clash in rng.sample(L.NEGATED_SEVERE, rng.choice((0, 1, 1, 2, 2, 3))):
        if not any(word in said for word in clash.lower().split("|")):
            sentences.append(note.fill(phrase))
    rng.shuffle(sentences)
    opener = f"{age} year old {person}{history} who presents with {cc}."
    return [opener] + sentences, intubated


def _plan(note: _Note, band: int, acuity: float, age: int, cc: str) -> list[str]:
    rng = note.rng
    sentences = [f"{age}yo with {cc}."]
    n_comp = sum(rng.random() < _sigmoid(1.2 * acuity - 1.5) for _ in range(2))
    complications = rng.sample(L.COMPLICATIONS, n_comp)
    if complications:
        sentences.append("Presentation complicated by " + " and ".join(c for c, _, _ in complications) + ".")
        note.risk += sum(risk for _, risk, _ in complications)
        note.log_los += sum(los for _, _, los in complications)
    n_proc = rng.choices((0, 1, 2), weights=(0.45, 0.4, 0.15))[0]
    procedures = rng.sample(L.PROCEDURES, n_proc)
    if procedures:
        sentences.append("Plan for " + " and ".join(p for p, _ in procedures) + ".")
        note.log_los += sum(w for _, w in procedures)
    if rng.random() < 0.15:
        phrase, los = rng.choice(L.SURGERY)
        sentences.append(note.fill(phrase))
        note.log_los += los
    if band == 0 and rng.random() < 0.6:
        phrase, los = rng.choice(L.SHORT_STAY)
        sentences.append(phrase)
        note.log_los += los
    sentences.extend(rng.sample(L.PLAN_ITEMS, rng.randint(1, 2)))
    if acuity + rng.gauss(0, 0.4) > 0.9:
        sentences.append(rng.choice(("Admit to MICU.", "Admit to CCU.", "Admit to SICU.")))
        note.risk += 0.3
        note.log_los += 0.55
    else:
        sentences.append(rng.choice(("Admit to medicine.", "Admit to the floor.", "Admit to telemetry.")))
    if rng.random() < _sigmoid(-4.5 + 1.2 * acuity + (age - 75) / 10):
        sentences.append("Goals of care discussed with family, moving toward comfort measures.")
        note.risk += 1.3
    elif rng.random() < _sigmoid(-3.0 + 0.8 * acuity + (age - 70) / 8):
        sentences.append("Code status: DNR/DNI.")
        note.risk += 0.9
    else:
        sentences.append("Code status: full code.")
    return sentences


def _admission_note(rng: random.Random) -> _Note:
    sex = rng.choice("MF")
    note = _Note(rng=rng, pro=_pronouns(sex))
    age = int(min(98.0, max(19.0, rng.gauss(64, 16))))
    acuity = rng.gauss(0.0, 1.0)
    note.risk = 0.8 * max(0.0, (age - 60) / 20) + 0.5 * (age > 80) + rng.gauss(0.0, 1.1)
    note.log_los = math.log(3.4) + 0.15 * (age > 75) + rng.gauss(0.0, 0.45)

    shifted = acuity + rng.gauss(0.0, 0.5)
    band = 2 if shifted > 1.2 else 0 if shifted < -0.6 else 1
    pool = (L.CHIEF_COMPLAINTS_MILD, L.CHIEF_COMPLAINTS_MODERATE, L.CHIEF_COMPLAINTS_SEVERE)[band]
    cc, weight = rng.choice(pool)
    note.risk += weight
    note.log_los += (-0.2, 0.0, 0.2)[band]

    common = tuple(item for item in L.PMH_COMMON if sex == "M" or item[0] not in L.MALE_ONLY)
    chosen = rng.sample(common, rng.randint(1, 4))
    pmh = [condition for condition, _ in chosen]
    note.risk += sum(weight for _, weight in chosen)
    if rng.random() < _sigmoid(0.9 * acuity - 2.2 + (age - 65) / 25):
        condition, weight = rng.choice(L.PMH_SEVERE)
        pmh.insert(rng.randint(0, len(pmh)), condition)
        note.risk += weight

    note.add("CHIEF COMPLAINT", [cc.capitalize() + "."])
    hpi, intubated = _hpi(note, age, sex, cc, pmh, acuity)
    note.add("PRESENT ILLNESS", hpi)
    note.add("MEDICAL HISTORY", [", ".join(pmh) + "."])
    if rng.random() < 0.8:
        note.add("MEDICATION ON ADMISSION", [", ".join(rng.sample(L.HOME_MEDICATIONS, rng.randint(2, 4))) + "."])
    if rng.random() < 0.6:
        note.add("ALLERGIES", [rng.choice(L.ALLERGIES) + "."])
    note.add("PHYSICAL EXAM", [_vitals(note, acuity, intubated)] + _exam(note, band, acuity, intubated))
    if rng.random() < 0.3:
        note.add("FAMILY HISTORY", [note.fill(rng.choice(L.FAMILY_HISTORY))])
    if rng.random() < 0.8:
        phrase, risk, los = rng.choice(L.SOCIAL_HISTORY)
        note.add("SOCIAL HISTORY", [note.fill(phrase)])
        note.risk += risk
        note.log_los += los
    note.add("LABS", [_labs(note, acuity)])
    note.add("ASSESSMENT AND PLAN", _plan(note, band, acuity, age, cc))
    return note


def _los_band(log_los: float) -> int:
    days = math.exp(log_los)
    return sum(days > upper for upper in LOS_BAND_UPPER_DAYS)


def _note_rows(rng: random.Random, size: int) -> list[tuple[int, str, int, int]]:
    """(id, text, died, los band) for ``size`` admissions."""
    notes = [_admission_note(rng) for _ in range(size)]
    risks = sorted(n.risk for n in notes)
    threshold = risks[min(size - 1, int(POSITIVE_QUANTILE * size))]
    ids = rng.sample(range(100000, 200000), size)
    rows = []
    for hadm_id, note in zip(ids, notes):
        died = int(note.risk > threshold)
        if rng.random() < LABEL_NOISE_RATE:
            died = int(rng.random() >= POSITIVE_QUANTILE)
        rows.append((hadm_id, note.text, died, _los_band(note.log_los)))
    return rows


def _write_csv(path: Path, header: tuple[str, str, str], rows: list[tuple[int, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


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
    fills = {
        "pr": rng.sample(L.PROBLEMS, 3),
        "te": rng.sample(L.TESTS, 2),
        "tr": rng.sample(L.TREATMENTS, 2),
    }
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
            sentence.tokens.append(_fill(rng, piece, pro))
        else:
            sentence.tokens.append(piece)
    first = sentence.tokens[0]
    sentence.tokens[0] = first[:1].upper() + first[1:]
    sentence.relations = [(slot_concept[a], rel, slot_concept[b]) for a, rel, b in links]
    return sentence


def _relation_sentence(rng: random.Random, pro: dict[str, str]) -> Sentence:
    shape = _weighted(rng, SENTENCE_KIND_WEIGHTS)
    if shape == "relation":
        rel = _weighted(rng, RELATION_WEIGHTS)
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


def _record(rng: random.Random) -> list[Sentence]:
    pro = _pronouns(rng.choice("MF"))
    n_lines = rng.randint(5, 15)
    lines: list[Sentence] = []
    if rng.random() < 0.5:
        date = f"{rng.randint(2005, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        lines += [Sentence(tokens=L.RECORD_HEADERS[0].split(" ")), Sentence(tokens=[date])]
    while len(lines) < n_lines:
        lines.append(_relation_sentence(rng, pro))
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


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def write_synthetic(out_dir: str | Path, seed: int = 0, size: int = 600) -> dict[str, Path]:
    """Write all formats under out_dir; return {format_name: path}.

    ``size`` is the number of admission notes in total (split 70/15/15); the
    i2b2 records hold about ``size`` sentences in total, split the same way.
    """
    out = Path(out_dir)
    master = random.Random(seed)
    note_rng = random.Random(master.getrandbits(64))
    sentence_rng = random.Random(master.getrandbits(64))

    rows = _note_rows(note_rng, size)
    records = [_record(sentence_rng) for _ in range(max(3, round(size / 10)))]
    note_counts, record_counts = split_counts(len(rows)), split_counts(len(records))
    note_start = record_start = 0
    for split, n_notes, n_records in zip(SPLITS, note_counts, record_counts):
        part = rows[note_start : note_start + n_notes]
        _write_csv(
            out / "mortality" / f"{split}.csv",
            ("id", "text", "hospital_expire_flag"),
            [(i, text, died) for i, text, died, _ in part],
        )
        _write_csv(
            out / "length_of_stay" / f"{split}.csv",
            ("id", "text", "los_label"),
            [(i, text, los) for i, text, _, los in part],
        )
        sentences: list[Sentence] = []
        for number in range(record_start, record_start + n_records):
            _write_record(out / "i2b2" / split, f"record-{number + 1:03d}", records[number])
            sentences.extend(records[number])
        _write_ner(out / "ner" / f"{split}.tsv", sentences)
        _write_relations(out / "relations" / f"{split}.tsv", sentences)
        note_start += n_notes
        record_start += n_records
    return {name: out / name for name in FORMATS}

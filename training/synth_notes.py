"""Synthetic admission notes (van Aken MIMIC CSVs): mortality and length-of-stay labels from
latent scores that sum what the note says (see :mod:`bedside.training.synth`)."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from bedside.training import synth_lexicon as L

from .synth_common import fill, pronouns, sigmoid

POSITIVE_QUANTILE = 0.88  # share of admissions below the death threshold
# With this probability a label is redrawn at the base rate (random flips). Flipping
# a fixed share of all labels instead would swamp the rare positive class.
LABEL_NOISE_RATE = 0.1
LOS_BAND_UPPER_DAYS = (3.0, 7.0, 14.0)  # bands 0..3: <=3, 3-7, 7-14, >14 days


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
        return fill(self.rng, template, self.pro)

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
    n_severe = sum(rng.random() < sigmoid(2.0 * acuity - 2.6) for _ in range(3))
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
    n_comp = sum(rng.random() < sigmoid(1.2 * acuity - 1.5) for _ in range(2))
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
    if rng.random() < sigmoid(-4.5 + 1.2 * acuity + (age - 75) / 10):
        sentences.append("Goals of care discussed with family, moving toward comfort measures.")
        note.risk += 1.3
    elif rng.random() < sigmoid(-3.0 + 0.8 * acuity + (age - 70) / 8):
        sentences.append("Code status: DNR/DNI.")
        note.risk += 0.9
    else:
        sentences.append("Code status: full code.")
    return sentences


def _admission_note(rng: random.Random) -> _Note:
    sex = rng.choice("MF")
    note = _Note(rng=rng, pro=pronouns(sex))
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
    if rng.random() < sigmoid(0.9 * acuity - 2.2 + (age - 65) / 25):
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

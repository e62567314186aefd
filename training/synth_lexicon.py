"""Vocabulary and sentence templates for :mod:`bedside.training.synth`, kept as data in
``synth_lexicon.json`` (its ``_about`` entry says what each list holds).

Lists keep their order, so a seed gives the same files. Admission note phrases carry a
weight: what they add to the latent mortality risk (``risk``) or to the log length of stay
(``los``). Placeholders in braces are filled by the generator: ``{he}``/``{He}``/``{his}``/
``{him}`` pronouns, ``{n}`` (2-9), ``{nn}`` (10-60) and ``{x}`` (2.5-6.0) numbers.

Concept lexicons are pre-tokenised (tokens separated by single spaces, punctuation as
separate tokens) in natural case; i2b2 lower-cases them in ``.con`` files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_DATA: dict[str, Any] = json.loads(Path(__file__).with_name("synth_lexicon.json").read_text(encoding="utf-8"))


def __getattr__(name: str) -> Any:
    try:
        return _DATA[name]
    except KeyError:
        raise AttributeError(f"the synthetic lexicon has no {name!r}") from None

"""The default activation check: load the version on a fresh copy of the base and predict.

Inputs come from the artifact's ``examples.json`` (``{"input", "expected"}``): at least one,
each with the answer it gave when the artifact was saved, and every answer must match (the
label, or the entity spans) and be a finite, well-formed distribution over the task's labels.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fresh_backbone(backbone):
    """A private copy of the served encoder: PEFT injects layers in place, the served one must not change."""
    from ..backbones import Backbone

    return Backbone(
        encoder=pristine_encoder(backbone.encoder),
        tokenizer=backbone.tokenizer,
        name=backbone.name,
        fingerprint=backbone.fingerprint,
    )


def pristine_encoder(encoder):
    """A deep copy without adapters. A served encoder usually carries PEFT layers already:
    rebuild it from its config and its base weights (``...query.base_layer.weight`` -> ``...query.weight``)."""
    from ..bank import BankedLinear

    banked = any(isinstance(m, BankedLinear) for m in encoder.modules())
    if not banked and not any(hasattr(m, "base_layer") for m in encoder.modules()):
        return copy.deepcopy(encoder)
    from ..backbones import drop_pooler

    clean = type(encoder)(copy.deepcopy(encoder.config))
    drop_pooler(clean)
    # PEFT wraps a layer as `.base_layer`, a LoRA bank as `.base`; either way keep only the base weights.
    state = {
        k.replace(".base_layer.", ".").replace(".base.", "."): v
        for k, v in encoder.state_dict().items()
        if ".lora_" not in k and ".ia3_" not in k
    }
    clean.load_state_dict(state, strict=True)
    return clean.eval().to(next(encoder.parameters()).device)


def default_smoke(backbone) -> Callable[[Path], None]:
    def smoke(artifact_dir: Path) -> None:
        from ..artifact import attach, load_artifact
        from ..multi import MultiAdapterModel
        from ..predict import Predictor

        artifact = load_artifact(artifact_dir)
        model = MultiAdapterModel(fresh_backbone(backbone))
        attach(model, artifact, "smoke")
        model.eval()
        check_predictions(Predictor(model, "smoke"), artifact, artifact_dir)

    return smoke


def check_predictions(predictor, artifact, artifact_dir: Path) -> None:
    """Ask ``predictor`` (the version, loaded somewhere) its examples; raise on a wrong or malformed answer."""
    from .validate import read_examples

    examples = read_examples(Path(artifact_dir))
    if not examples:
        raise ValueError("the artifact has no smoke examples (examples.json is empty or missing)")
    if any(e.expected is None for e in examples):
        raise ValueError("every smoke example needs the answer it gave when the artifact was saved")
    for i, out in enumerate(predictor.predict([_plain(e.input) for e in examples])):
        check_output(out, artifact.manifest.task.labels)
        compare(examples[i].expected, out, i)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str) else value.model_dump()


def check_output(out: dict[str, Any], labels) -> None:
    if "label" in out:
        if out["label"] not in labels or not all(math.isfinite(p) for p in out["probabilities"].values()):
            raise ValueError("the prediction is not a finite distribution over the task's labels")
    elif not all(math.isfinite(e["score"]) for e in out.get("entities", [])):
        raise ValueError("entity scores are not finite")


def _entities(value: Any) -> list[tuple]:
    return [(e.get("text"), e.get("type"), e.get("start"), e.get("end")) for e in value]


class AnswerMismatch(ValueError):
    """A well-formed answer that differs from the one recorded with the example."""


def compare(expected: Any, out: dict[str, Any], index: int) -> None:
    """Labels compare exactly; entities by (text, type, start, end); scores are not compared."""
    if isinstance(expected, dict):
        expected = expected.get("label", expected.get("entities"))
    if isinstance(expected, str):
        if out.get("label") != expected:
            raise AnswerMismatch(f"example {index}: expected {expected!r}, the adapter predicted {out.get('label')!r}")
        return
    want, got = _entities(expected or []), _entities(out.get("entities", []))
    if want != got:  # spans only: example text may be clinical data, keep it out of logs
        raise AnswerMismatch(
            f"example {index}: expected {[t[1:] for t in want]!r}, the adapter predicted {[t[1:] for t in got]!r}"
        )

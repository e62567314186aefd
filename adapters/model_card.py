"""The model card (``README.md`` in every artifact): what the adapter is for, what it was trained
on, how it scored (with 95 % intervals), how its probabilities are calibrated, the operating
point it answers by, and where it stops. Written from the manifest alone, so it cannot disagree
with what the service loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .artifact import Manifest


def _value(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _metrics(m: Manifest) -> str:
    rows = []
    for key, value in sorted(m.metrics.items()):
        if value is None:
            continue
        low_high = m.metrics_ci.get(key)
        interval = f"{low_high[0]:.4f} – {low_high[1]:.4f}" if low_high else "—"
        rows.append(f"| {key} | {value:.4f} | {interval} |")
    return "\n".join(rows) or "| (none) | | |"


def _data(m: Manifest) -> str:
    data = m.data or {}
    sizes = data.get("sizes", {})
    counts = data.get("counts", {})
    if not sizes:
        return f"Training data hash: `{m.data_hash or 'unknown'}`."
    unit = "entities" if m.task.kind.value == "token" else "examples"
    lines = [
        f"Training data hash: `{m.data_hash or 'unknown'}`.",
        "",
        f"| split | size | {unit} by label |",
        "|---|---|---|",
    ]
    for split, size in sizes.items():
        per = ", ".join(f"{k}: {v}" for k, v in counts.get(split, {}).items()) or "—"
        lines.append(f"| {split} | {size} | {per} |")
    return "\n".join(lines)


def _calibration(m: Manifest) -> str:
    c = m.calibration
    if not c:
        if m.task.kind.value == "token":
            return "Not applicable: a tag per word; each entity's score is its words' softmax, not calibrated."
        return "Not calibrated: probabilities are the softmax of the logits as trained."
    if m.readout.weights is not None:
        per = ", ".join(
            f"{label} × {w:.3f} {b:+.3f}"
            for label, w, b in zip(m.task.labels, m.readout.weights, m.readout.biases or ())
        )
        how = (
            "Vector scaling fitted on the validation split: each label's logit times its weight plus its "
            f"bias before the softmax ({per})."
        )
    elif m.readout.temperature != 1.0:
        how = (
            f"Temperature scaling fitted on the validation split: **T = {m.readout.temperature:.3f}** "
            "(the service divides the logits by T before the softmax; labels' order is unchanged)."
        )
    else:
        how = "Calibration was fitted on the validation split but did not lower its NLL: the softmax as trained."
    held = c.get("held_out_nll")
    if held:
        how += (
            " Chosen by held-out NLL (5-fold within validation; lower is better): "
            + ", ".join(f"{k} {v:.4f}" for k, v in held.items())
            + "."
        )
    lines = [how, "", "| split | NLL before → after | Brier before → after | ECE before → after |", "|---|---|---|---|"]
    for split in ("validation", "test"):
        if split in c:
            b, a, ci = c[split]["before"], c[split]["after"], c[split].get("after_intervals", {})
            after = {k: f"{a[k]:.4f}" + (f" [{ci[k][0]:.4f}, {ci[k][1]:.4f}]" if k in ci else "") for k in a}
            lines.append(
                f"| {split} (n={c[split]['n']}) | {b['nll']:.4f} → {after['nll']} | "
                f"{b['brier']:.4f} → {after['brier']} | {b['ece']:.4f} → {after['ece']} |"
            )
    floor = c.get("test", {}).get("ece_floor")
    if floor:
        lines += [
            "",
            "Brackets: 95 % bootstrap intervals. ECE has none (resampling adds noise that binned ECE "
            "reads as miscalibration); its yardstick is the ECE a perfectly calibrated model shows on "
            f"this many test examples from sampling alone: {floor['mean']:.4f} on average, "
            f"{floor['p95']:.4f} at the 95th percentile. A test ECE below that cannot be told from "
            "perfect calibration here.",
        ]
    if c.get("diagram"):
        lines += ["", f"Reliability diagram (test split): `{c['diagram']}` in the training run's folder."]
    bins = [b for b in c.get("reliability_test", []) if b["count"]]
    if bins:
        lines += ["", "| top-label probability | mean probability | accuracy | examples |", "|---|---|---|---|"]
        lines += [
            f"| {b['low']:.2f}–{b['high']:.2f} | {b['confidence']:.3f} | {b['accuracy']:.3f} | {b['count']} |"
            for b in bins
        ]
    return "\n".join(lines)


def _operating_point(m: Manifest) -> str:
    point = m.readout.operating_point
    if point is None:
        return "None: the label is the most probable one."
    rates = ", ".join(f"{k} {v:.3f}" for k, v in point.validation.items())
    return (
        f"`label` is **{point.positive}** when its calibrated probability is ≥ **{point.threshold:.4f}**, "
        f"chosen on the validation split by the rule `{point.rule}` (there: {rates}). The probabilities "
        "are returned beside the label, so another threshold can be applied downstream."
    )


def _reading(m: Manifest) -> str:
    if m.task.kind.value == "token":
        return (
            f"whole notes in overlapping windows of {m.max_length} tokens, each word tagged where it has most context"
        )
    if m.task.kind.value == "pair":
        return f"each pair in a local window of at most {m.max_length} tokens around its two entities"
    how = m.long_input.strategy if m.long_input else "truncate"
    return f"rows of {m.max_length} tokens; a longer note is read by `{how}`"


def model_card(m: Manifest) -> str:
    serve = "yes" if m.servable else f"no — {m.not_servable_reason}"
    recipe = m.training.get("recipe", "—")
    targets = ", ".join(m.training.get("target_modules") or []) or "—"
    return f"""# {m.name} (version {m.version})

**Task:** `{m.task.name}` ({m.task.kind.value}) — {m.task.description or "user-defined task"}
**Labels:** {", ".join(f"`{label}`" for label in m.task.labels)}
**Base:** `{m.base.name}` (`{m.base.fingerprint[:19]}…`) · **servable on the shared base:** {serve}
**Created:** {m.created_at.isoformat()} by {m.created_by}

## Intended use
Decision support inside the hospital, read by clinicians beside the note: a flag to look
closer, never a diagnosis or an automatic decision. For English clinical notes like its
training data; check it on local notes (and on the patient groups that matter) before use.

## Data
{_data(m)}

## Method
- {m.method.value}, recipe `{recipe}`: rank {_value(m.training.get("rank"))}, \
alpha {_value(m.training.get("alpha"))} on `{targets}`, LoRA dropout {_value(m.training.get("dropout"))}
- trainable parameters: {m.trainable_params} of {m.total_params}
- learning rate {_value(m.training.get("lr"))}, epochs run {_value(m.training.get("cost", {}).get("epochs_run"))} \
of {_value(m.training.get("epochs"))} (best: {_value(m.training.get("cost", {}).get("best_epoch"))}), \
batch {_value(m.training.get("batch_size"))}, seed {_value(m.training.get("seed"))}

## Metrics (held-out test split, 95 % bootstrap intervals)
| metric | value | 95 % interval |
|---|---|---|
{_metrics(m)}

## Calibration
{_calibration(m)}

## Operating point
{_operating_point(m)}

## Limits
- Reads {_reading(m)}; every answer says how its input was read (`windows`, `strategy`).
- Trained and tested on one data set; not tested on other hospitals' notes, other note types,
  other languages, or patient subgroups separately. Intervals describe sampling noise of the
  test split only, not a change of population.
- Calibration holds for data like the validation split; recalibrate after a shift.
"""

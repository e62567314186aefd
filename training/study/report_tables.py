"""The study report's numbers: medians over seeds, the main table, the holistic efficiency
ranking, rank differences, and what the results say about the study's findings."""

from __future__ import annotations

import statistics
from collections import defaultdict

CLOSE_POINTS = 3.0  # "LoRA close to full fine-tuning": within this many points


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _std(values):
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _params(n) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _groups(rows, *keys):
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def _tasks(rows):
    return list(dict.fromkeys(r["task"] for r in rows))


def _metric(rows, task):
    return next((r["metric"] for r in rows if r["task"] == task and r.get("metric")), "score")


def summarise_main(rows):
    """(backbone, method, task) -> medians over seeds."""
    out = {}
    for (backbone, method, task), group in _groups(rows, "backbone", "method", "task").items():
        out[(backbone, method, task)] = {
            "score": _median([r["score"] for r in group]),
            "std": _std([r["score"] for r in group]),
            "low": _median([r.get("score_low") for r in group]),
            "high": _median([r.get("score_high") for r in group]),
            "n": len(group),
            "trainable_params": _median([r["trainable_params"] for r in group]),
            "backbone_params": group[0]["backbone_params"],
            "domain": group[0]["domain"],
            "time_to_best_s": _median([r["time_to_best_s"] for r in group]),
            "train_seconds": _median([r["train_seconds"] for r in group]),
        }
    return out


def _interval(s) -> str:
    return "—" if s.get("low") is None or s.get("high") is None else f"{_pct(s['low'])}–{_pct(s['high'])}"


def main_table(summary, tasks, rows) -> str:
    lines = []
    for task in tasks:
        lines += [
            f"**{task}** (test {_metric(rows, task)} ×100, median ± std over seeds; 95 % bootstrap interval "
            "of the test set, median over seeds)",
            "",
            "| backbone | size | method | score | 95 % interval | seeds | trainable params | train time (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (backbone, method, t), s in sorted(
            summary.items(), key=lambda kv: (kv[1]["backbone_params"] or 0, kv[0][0], kv[0][1])
        ):
            if t == task:
                lines.append(
                    f"| {backbone} | {_params(s['backbone_params'])} | {method} | {_pct(s['score'])} ± "
                    f"{100 * s['std']:.1f} | {_interval(s)} | {s['n']} | {_params(s['trainable_params'])} | "
                    f"{s['train_seconds'] or 0:.0f} |"
                )
        lines.append("")
    return "\n".join(lines)


def holistic(summary) -> list[dict]:
    """Per (backbone, method): mean score over tasks and the holistic efficiency (lower: more efficient)."""
    by = _groups([{"backbone": b, "method": m, **s} for (b, m, t), s in summary.items()], "backbone", "method")
    entries = [
        {
            "backbone": b,
            "method": m,
            "score": _median([g["score"] for g in group]),
            "time_to_best_s": _median([g["time_to_best_s"] for g in group]),
            "trainable_params": _median([g["trainable_params"] for g in group]),
            "backbone_params": group[0]["backbone_params"],
        }
        for (b, m), group in by.items()
    ]
    for key in ("time_to_best_s", "trainable_params", "backbone_params"):
        values = [e[key] for e in entries if e[key] is not None]
        lo, hi = (min(values), max(values)) if values else (0, 0)
        for e in entries:
            e[f"{key}_scaled"] = 0.0 if hi == lo or e[key] is None else (e[key] - lo) / (hi - lo)
    for e in entries:
        e["efficiency"] = statistics.mean(
            e[f"{k}_scaled"] for k in ("time_to_best_s", "trainable_params", "backbone_params")
        )
    return sorted(entries, key=lambda e: (e["efficiency"], -(e["score"] or 0)))


def rank_differences(rows) -> dict[str, list[tuple[int, float]]]:
    rank = [r for r in rows if r["study"] == "rank" and r["score"] is not None]
    out = {}
    for (task,), group in _groups(rank, "task").items():
        medians = {r: _median([g["score"] for g in g_]) for (r,), g_ in _groups(group, "rank").items()}
        if 8 in medians:
            out[task] = sorted((r, 100 * (s - medians[8])) for r, s in medians.items())
    return out


def findings(summary, rows) -> list[str]:
    out = []
    gaps = [
        (b, t, 100 * (summary[(b, "full", t)]["score"] - s["score"]))
        for (b, m, t), s in summary.items()
        if m == "lora"
        and (b, "full", t) in summary
        and s["score"] is not None
        and summary[(b, "full", t)]["score"] is not None
    ]
    if gaps:
        mean_gap = statistics.mean(g for _, _, g in gaps)
        worst = max(gaps, key=lambda g: g[2])
        verdict = "holds" if mean_gap <= CLOSE_POINTS else "does not hold"
        out.append(
            f"**LoRA close to full fine-tuning — {verdict} here**: full fine-tuning minus LoRA is "
            f"{mean_gap:+.1f} points on average over {len(gaps)} backbone×task pairs (largest "
            f"{worst[2]:+.1f} on {worst[1]} with {worst[0]}); 'close' means within {CLOSE_POINTS:g} points."
        )
    else:
        out.append("LoRA vs full fine-tuning: not measured (the study needs both methods on a backbone and task).")
    token_tasks = {r["task"] for r in rows if r.get("task_kind") == "token"}
    weaker, compared = [], []
    for (b, m, t), s in summary.items():
        if t in token_tasks and m in ("ia3", "prompt", "prefix") and (b, "lora", t) in summary:
            lora = summary[(b, "lora", t)]["score"]
            if s["score"] is not None and lora is not None:
                compared.append((b, m, t, 100 * (s["score"] - lora)))
                weaker.append(s["score"] < lora)
    if compared:
        verdict = "holds" if all(weaker) else "holds partly" if any(weaker) else "does not hold"
        per_method = []
        for method in ("ia3", "prompt", "prefix"):
            diffs = [d for _, m, _, d in compared if m == method]
            if diffs:
                per_method.append(
                    f"{method} below LoRA in {sum(d < 0 for d in diffs)} of {len(diffs)} backbone×task "
                    f"pairs, {statistics.mean(diffs):+.1f} points on average (range {min(diffs):+.1f} to "
                    f"{max(diffs):+.1f})"
                )
        out.append(
            f"**IA3 and prompt methods weaker than LoRA on NER — {verdict} here**: " + "; ".join(per_method) + "."
        )
    else:
        out.append("IA3/prompt vs LoRA on NER: not measured (needs a token task with those methods and LoRA).")
    sizes = sorted({s["backbone_params"] for s in summary.values() if s["domain"] != "general"})
    if sizes:
        size = sizes[0]
        diffs = []
        for (_, m, t), s in summary.items():
            if s["backbone_params"] == size and s["domain"] != "general" and m == "lora":
                general = [
                    g["score"]
                    for (b2, m2, t2), g in summary.items()
                    if t2 == t
                    and m2 == m
                    and g["backbone_params"] == size
                    and g["domain"] == "general"
                    and g["score"] is not None
                ]
                if general and s["score"] is not None:
                    diffs.append((t, 100 * (s["score"] - max(general))))
        if diffs:
            mean = statistics.mean(d for _, d in diffs)
            verdict = "holds" if mean > 0 else "does not hold"
            out.append(
                f"**Domain pre-training helps the smallest model — {verdict} here**: at {_params(size)} "
                f"parameters the domain-adapted backbone scores {mean:+.1f} points vs the general one "
                f"(LoRA; " + ", ".join(f"{t} {d:+.1f}" for t, d in diffs) + ")."
            )
    if len(out) < 3:
        out.append("Domain pre-training: not measured (needs a domain-adapted and a general backbone of one size).")
    return out

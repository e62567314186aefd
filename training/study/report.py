"""``bedside report``: the study's tables and figures from the tidy results table.

Sections mirror the study: (1) main table, (2) score vs trainable parameters and model size,
(3) general vs domain pre-training per backbone size, (4) score vs training time and vs
few-shot size (and the time-budget study), (5) efficiency vs performance with the holistic
efficiency ranking (mean of min-max-scaled time to best, trainable parameters and total
parameters; lower is more efficient), (6) score difference vs LoRA rank 8. Then what the
measured results say about the study's findings.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter  # noqa: E402

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
            "score": _median([r["score"] for r in group]), "std": _std([r["score"] for r in group]),
            "n": len(group), "trainable_params": _median([r["trainable_params"] for r in group]),
            "backbone_params": group[0]["backbone_params"], "domain": group[0]["domain"],
            "time_to_best_s": _median([r["time_to_best_s"] for r in group]),
            "train_seconds": _median([r["train_seconds"] for r in group])}
    return out


def _plain_log_axis(ax, base: int = 10) -> None:
    """A log x axis labelled with plain numbers (no overlapping minor labels)."""
    ax.set_xscale("log", base=base)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _millions(ax) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:.0f}M"))


def _panels(n, width=5.0, height=3.8):
    fig, axes = plt.subplots(1, max(1, n), figsize=(width * max(1, n), height), squeeze=False)
    return fig, list(axes[0])


def _save(fig, path: Path, title: str) -> str:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _empty(path: Path, message: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _save(fig, path, "")


# -- sections ----------------------------------------------------------------------------
def main_table(summary, tasks, rows) -> str:
    lines = []
    for task in tasks:
        lines += [f"**{task}** (test {_metric(rows, task)} ×100, median ± std over seeds)", "",
                  "| backbone | size | method | score | seeds | trainable params | train time (s) |",
                  "|---|---|---|---|---|---|---|"]
        for (backbone, method, t), s in sorted(summary.items(), key=lambda kv: (kv[1]["backbone_params"] or 0,
                                                                               kv[0][0], kv[0][1])):
            if t == task:
                lines.append(f"| {backbone} | {_params(s['backbone_params'])} | {method} | {_pct(s['score'])} ± "
                             f"{100 * s['std']:.1f} | {s['n']} | {_params(s['trainable_params'])} | "
                             f"{s['train_seconds'] or 0:.0f} |")
        lines.append("")
    return "\n".join(lines)


def figure_params(summary, tasks, rows, folder: Path) -> str:
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.6 * len(tasks)), squeeze=False)
    methods = sorted({m for _, m, _ in summary})
    for row_axes, task in zip(axes, tasks):
        for ax, key, label in zip(row_axes, ("trainable_params", "backbone_params"),
                                  ("trainable parameters", "model size (total parameters)")):
            for i, method in enumerate(methods):
                points = [(s[key], s["score"]) for (b, m, t), s in summary.items()
                          if t == task and m == method and s["score"] is not None and s[key]]
                if points:
                    xs, ys = zip(*sorted(points))
                    ax.scatter(xs, [100 * y for y in ys], label=method, color=f"C{i}")
            if key == "trainable_params":
                ax.set_xscale("log")
            else:  # a narrow range: millions on a linear axis read better
                _millions(ax)
            ax.set_xlabel(label)
            ax.set_ylabel(f"{task}: test {_metric(rows, task)} ×100")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return _save(fig, folder / "fig1_params.png", "Score vs trainable parameters and vs model size")


def figure_domain(summary, tasks, folder: Path) -> str:
    method = "lora" if any(m == "lora" for _, m, _ in summary) else next(iter(summary))[1]
    sizes = sorted({s["backbone_params"] for s in summary.values() if s["backbone_params"]})
    has_domain = any(s["domain"] != "general" for s in summary.values())
    if not has_domain:
        return _empty(folder / "fig2_domain.png", "No domain-adapted backbone in this study.")
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks):
        for j, domain in enumerate(("general", "biomedical", "clinical")):
            ys = []
            for size in sizes:
                found = [s["score"] for (b, m, t), s in summary.items()
                         if t == task and m == method and s["backbone_params"] == size and s["domain"] == domain]
                ys.append(100 * max(found) if found and found[0] is not None else 0)
            if any(ys):
                ax.bar([i + 0.27 * (j - 1) for i in range(len(sizes))], ys, width=0.27, label=domain)
        ax.set_xticks(range(len(sizes)), [_params(s) for s in sizes])
        ax.set_xlabel("backbone size (parameters)")
        ax.set_ylabel(f"{task} score ×100 ({method})")
        ax.legend(fontsize=8)
    return _save(fig, folder / "fig2_domain.png", f"General vs domain pre-training per backbone size ({method})")


def figure_time(summary, rows, tasks, folder: Path) -> str:
    few = [r for r in rows if r["study"] == "few_shot"]
    budget = [r for r in rows if r["study"] == "time_budget"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    ax = axes[0][0]
    methods = sorted({m for _, m, _ in summary})
    for i, method in enumerate(methods):
        points = [(s["train_seconds"], 100 * s["score"]) for (b, m, t), s in summary.items()
                  if m == method and s["score"] is not None and s["train_seconds"]]
        if points:
            ax.scatter(*zip(*points), label=method, color=f"C{i}")
    ax.set_xscale("log")
    ax.set(xlabel="training time (s)", ylabel="test score ×100", title="score vs training time (all tasks)")
    ax.legend(fontsize=8)
    for ax, data, key, title, xlabel in ((axes[0][1], few, "few_shot", "score vs few-shot size",
                                          "training examples per class"),
                                         (axes[0][2], budget, "time_budget", "best score within a time budget",
                                          "time budget (s)")):
        if not data:
            ax.axis("off")
            ax.text(0.5, 0.5, f"no {key.replace('_', '-')} runs", ha="center", va="center")
            continue
        for i, (task, group) in enumerate(_groups(data, "task").items()):
            points = sorted((x, _median([r["score"] for r in g])) for (x,), g in _groups(group, key).items())
            ax.plot([p[0] for p in points], [100 * (p[1] or 0) for p in points], marker="o", label=task[0])
        _plain_log_axis(ax, 2 if key == "few_shot" else 10)
        ax.set_xticks(sorted({r[key] for r in data}))
        ax.set(xlabel=xlabel, ylabel="test score ×100", title=title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, folder / "fig3_time.png", "Score vs training time, few-shot size and time budget")


def holistic(summary) -> list[dict]:
    """Per (backbone, method): mean score over tasks and the holistic efficiency (lower: more efficient)."""
    by = _groups([{"backbone": b, "method": m, **s} for (b, m, t), s in summary.items()], "backbone", "method")
    entries = [{"backbone": b, "method": m, "score": _median([g["score"] for g in group]),
                "time_to_best_s": _median([g["time_to_best_s"] for g in group]),
                "trainable_params": _median([g["trainable_params"] for g in group]),
                "backbone_params": group[0]["backbone_params"]} for (b, m), group in by.items()]
    for key in ("time_to_best_s", "trainable_params", "backbone_params"):
        values = [e[key] for e in entries if e[key] is not None]
        lo, hi = (min(values), max(values)) if values else (0, 0)
        for e in entries:
            e[f"{key}_scaled"] = 0.0 if hi == lo or e[key] is None else (e[key] - lo) / (hi - lo)
    for e in entries:
        e["efficiency"] = statistics.mean(e[f"{k}_scaled"] for k in ("time_to_best_s", "trainable_params",
                                                                    "backbone_params"))
    return sorted(entries, key=lambda e: (e["efficiency"], -(e["score"] or 0)))


def figure_efficiency(ranking, folder: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({e["method"] for e in ranking})
    for i, method in enumerate(methods):
        sub = [e for e in ranking if e["method"] == method and e["score"] is not None]
        ax.scatter([e["efficiency"] for e in sub], [100 * e["score"] for e in sub], label=method, color=f"C{i}", s=50)
        for e in sub:
            ax.annotate(e["backbone"], (e["efficiency"], 100 * e["score"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set(xlabel="holistic efficiency (mean of min-max-scaled time to best, trainable and total params; "
                  "lower = more efficient)", ylabel="median test score over tasks ×100")
    ax.xaxis.label.set_fontsize(8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, folder / "fig4_efficiency.png", "Efficiency vs performance")


def rank_differences(rows) -> dict[str, list[tuple[int, float]]]:
    rank = [r for r in rows if r["study"] == "rank" and r["score"] is not None]
    out = {}
    for (task,), group in _groups(rank, "task").items():
        medians = {r: _median([g["score"] for g in g_]) for (r,), g_ in _groups(group, "rank").items()}
        if 8 in medians:
            out[task] = sorted((r, 100 * (s - medians[8])) for r, s in medians.items())
    return out


def figure_rank(diffs, folder: Path) -> str:
    if not diffs:
        return _empty(folder / "fig5_rank.png", "No LoRA rank study with rank 8 in this study.")
    fig, ax = plt.subplots(figsize=(7, 4))
    for task, points in diffs.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=task)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    _plain_log_axis(ax, 2)
    ax.set_xticks(sorted({r for points in diffs.values() for r, _ in points}))
    ax.set(xlabel="LoRA rank r", ylabel="test score − score at r=8 (points)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, folder / "fig5_rank.png", "Score difference vs LoRA rank 8")


# -- findings --------------------------------------------------------------------------------
def findings(summary, rows) -> list[str]:
    out = []
    gaps = [(b, t, 100 * (summary[(b, "full", t)]["score"] - s["score"])) for (b, m, t), s in summary.items()
            if m == "lora" and (b, "full", t) in summary and s["score"] is not None
            and summary[(b, "full", t)]["score"] is not None]
    if gaps:
        mean_gap = statistics.mean(g for _, _, g in gaps)
        worst = max(gaps, key=lambda g: g[2])
        verdict = "holds" if mean_gap <= CLOSE_POINTS else "does not hold"
        out.append(f"**LoRA close to full fine-tuning — {verdict} here**: full fine-tuning minus LoRA is "
                   f"{mean_gap:+.1f} points on average over {len(gaps)} backbone×task pairs (largest "
                   f"{worst[2]:+.1f} on {worst[1]} with {worst[0]}); 'close' means within {CLOSE_POINTS:g} points.")
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
                per_method.append(f"{method} below LoRA in {sum(d < 0 for d in diffs)} of {len(diffs)} backbone×task "
                                  f"pairs, {statistics.mean(diffs):+.1f} points on average (range {min(diffs):+.1f} to "
                                  f"{max(diffs):+.1f})")
        out.append(f"**IA3 and prompt methods weaker than LoRA on NER — {verdict} here**: " + "; ".join(per_method) + ".")
    else:
        out.append("IA3/prompt vs LoRA on NER: not measured (needs a token task with those methods and LoRA).")
    sizes = sorted({s["backbone_params"] for s in summary.values() if s["domain"] != "general"})
    if sizes:
        size = sizes[0]
        diffs = []
        for (b, m, t), s in summary.items():
            if s["backbone_params"] == size and s["domain"] != "general" and m == "lora":
                general = [g["score"] for (b2, m2, t2), g in summary.items() if t2 == t and m2 == m
                           and g["backbone_params"] == size and g["domain"] == "general" and g["score"] is not None]
                if general and s["score"] is not None:
                    diffs.append((t, 100 * (s["score"] - max(general))))
        if diffs:
            mean = statistics.mean(d for _, d in diffs)
            verdict = "holds" if mean > 0 else "does not hold"
            out.append(f"**Domain pre-training helps the smallest model — {verdict} here**: at {_params(size)} "
                       f"parameters the domain-adapted backbone scores {mean:+.1f} points vs the general one "
                       f"(LoRA; " + ", ".join(f"{t} {d:+.1f}" for t, d in diffs) + ").")
    if len(out) < 3:
        out.append("Domain pre-training: not measured (needs a domain-adapted and a general backbone of one size).")
    return out


def write_report(rows: list[dict], folder: Path, title: str = "Efficiency study") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if r.get("status") == "ok" and r.get("score") is not None]
    failed = [r for r in rows if r.get("status") != "ok"]
    main = [r for r in ok if r["study"] == "main"]
    tasks = _tasks(main) or _tasks(ok)
    summary = summarise_main(main)
    ranking = holistic(summary)
    fig1 = figure_params(summary, tasks, ok, folder) if summary else _empty(folder / "fig1_params.png", "no runs")
    fig2 = figure_domain(summary, tasks, folder) if summary else _empty(folder / "fig2_domain.png", "no runs")
    fig3 = figure_time(summary, ok, tasks, folder)
    fig4 = figure_efficiency(ranking, folder) if ranking else _empty(folder / "fig4_efficiency.png", "no runs")
    fig5 = figure_rank(rank_differences(ok), folder)
    rank_rows = "\n".join(f"| {i + 1} | {e['backbone']} | {e['method']} | {e['efficiency']:.3f} | {_pct(e['score'])} | "
                          f"{e['time_to_best_s'] or 0:.0f} | {_params(e['trainable_params'])} | "
                          f"{_params(e['backbone_params'])} |" for i, e in enumerate(ranking))
    text = f"""# {title}

{len(rows)} runs: {len(ok)} finished, {len(failed)} failed. Scores are each task's primary test metric
(the best validation epoch), ×100.

## 1. Main results

{main_table(summary, tasks, ok)}
## 2. Performance vs trainable parameters and model size

![score vs parameters]({fig1})

## 3. General vs domain pre-training per backbone size

![domain pre-training]({fig2})

## 4. Score vs training time and few-shot size

![time and few-shot]({fig3})

## 5. Efficiency vs performance

Holistic efficiency: the mean of min-max-scaled time to best epoch, trainable parameters and
total parameters over the study's (backbone, method) pairs; lower is more efficient.

| rank | backbone | method | holistic efficiency | median score | time to best (s) | trainable | total |
|---|---|---|---|---|---|---|---|
{rank_rows}

![efficiency]({fig4})

## 6. Score difference vs LoRA rank 8

![rank]({fig5})

## Do the study's findings hold here?

""" + "\n".join(f"- {line}" for line in findings(summary, ok)) + "\n"
    if failed:
        text += "\n## Failed runs\n\n" + "\n".join(f"- `{r['run_id']}`: {r.get('error')}" for r in failed) + "\n"
    path = folder / "report.md"
    path.write_text(text, encoding="utf-8")
    return path

"""The study report's figures (matplotlib, PNG): score vs parameters, domain pre-training,
score vs time and few-shot size, efficiency vs performance, rank differences."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

from .report_tables import _groups, _median, _metric, _params


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


def figure_params(summary, tasks, rows, folder: Path) -> str:
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.6 * len(tasks)), squeeze=False)
    methods = sorted({m for _, m, _ in summary})
    for row_axes, task in zip(axes, tasks):
        for ax, key, label in zip(
            row_axes, ("trainable_params", "backbone_params"), ("trainable parameters", "model size (total parameters)")
        ):
            for i, method in enumerate(methods):
                points = [
                    (s[key], s["score"])
                    for (b, m, t), s in summary.items()
                    if t == task and m == method and s["score"] is not None and s[key]
                ]
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
                found = [
                    s["score"]
                    for (b, m, t), s in summary.items()
                    if t == task and m == method and s["backbone_params"] == size and s["domain"] == domain
                ]
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
        points = [
            (s["train_seconds"], 100 * s["score"])
            for (b, m, t), s in summary.items()
            if m == method and s["score"] is not None and s["train_seconds"]
        ]
        if points:
            ax.scatter(*zip(*points), label=method, color=f"C{i}")
    ax.set_xscale("log")
    ax.set(xlabel="training time (s)", ylabel="test score ×100", title="score vs training time (all tasks)")
    ax.legend(fontsize=8)
    for ax, data, key, title, xlabel in (
        (axes[0][1], few, "few_shot", "score vs few-shot size", "training examples per class"),
        (axes[0][2], budget, "time_budget", "best score within a time budget", "time budget (s)"),
    ):
        if not data:
            ax.axis("off")
            ax.text(0.5, 0.5, f"no {key.replace('_', '-')} runs", ha="center", va="center")
            continue
        for task, group in _groups(data, "task").items():
            points = sorted((x, _median([r["score"] for r in g])) for (x,), g in _groups(group, key).items())
            ax.plot([p[0] for p in points], [100 * (p[1] or 0) for p in points], marker="o", label=task[0])
        _plain_log_axis(ax, 2 if key == "few_shot" else 10)
        ax.set_xticks(sorted({r[key] for r in data}))
        ax.set(xlabel=xlabel, ylabel="test score ×100", title=title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, folder / "fig3_time.png", "Score vs training time, few-shot size and time budget")


def figure_efficiency(ranking, folder: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({e["method"] for e in ranking})
    for i, method in enumerate(methods):
        sub = [e for e in ranking if e["method"] == method and e["score"] is not None]
        ax.scatter([e["efficiency"] for e in sub], [100 * e["score"] for e in sub], label=method, color=f"C{i}", s=50)
        for e in sub:
            ax.annotate(
                e["backbone"],
                (e["efficiency"], 100 * e["score"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set(
        xlabel="holistic efficiency (mean of min-max-scaled time to best, trainable and total params; "
        "lower = more efficient)",
        ylabel="median test score over tasks ×100",
    )
    ax.xaxis.label.set_fontsize(8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, folder / "fig4_efficiency.png", "Efficiency vs performance")


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

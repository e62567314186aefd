"""Benchmark and study figures: JSON, a Markdown table and PNG plots, with the machine recorded."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def machine() -> dict:
    import peft
    import torch
    import transformers

    info = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        pass
    return info


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write(
    out: Path, part: str, rows: list[dict], columns: list[str], settings: dict, plots=(), summary: dict | None = None
) -> Path:
    """``summary`` (optional): headline figures, saved in the JSON and listed above the table."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"part": part, "machine": machine(), "settings": settings, "results": rows}
    if summary is not None:
        payload["summary"] = summary
    (out / f"{part}.json").write_text(json.dumps(payload, indent=2) + "\n")
    head = "".join(
        f"- {k}: {v:.4g}\n" if isinstance(v, float) else f"- {k}: {v}\n"
        for k, v in (summary or {}).items()
        if len(str(v)) < 200
    )  # long ones: JSON only
    md = (
        f"## {part}\n\n"
        + (head + "\n" if head else "")
        + markdown_table(rows, columns)
        + f"\n\nmachine: `{json.dumps(payload['machine'])}`\n"
    )
    (out / f"{part}.md").write_text(md)
    for plot in plots:
        plot(out)
    return out / f"{part}.md"


def ratio_plot(
    rows: list[dict], x: str, series: list[str], group: str, title: str, file: Path, ylabel: str = "time / bare forward"
) -> None:
    groups = sorted({r[group] for r in rows})
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        sub = [r for r in rows if r[group] == g]
        for s in series:
            ax.plot([r[x] for r in sub], [r[s] for r in sub], marker="o", label=s.replace("_ratio", ""))
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{group} = {g}")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)


def series_plot(
    rows: list[dict],
    x: str,
    series: dict[str, str],
    title: str,
    file: Path,
    xlabel: str,
    ylabel: str,
    marks: Sequence[float] = (),
    mark_label: str = "",
    style: str = "line",
) -> None:
    """Quantities over time (``series``: legend label -> row key), with vertical marks (e.g. swaps)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = [r[x] for r in rows]
    width = (xs[1] - xs[0]) * 0.8 / max(1, len(series)) if len(xs) > 1 else 0.8
    for i, (label, key) in enumerate(series.items()):
        ys = [r[key] for r in rows]
        if style == "bar":
            ax.bar([v - (len(series) - 1 - 2 * i) * width / 2 for v in xs], ys, width=width, label=label)
        else:
            ax.plot(xs, ys, marker="o", ms=3, label=label)
    if style == "bar":  # counts: whole numbers, and an empty plot says so
        top = max([0, *(r[k] for r in rows for k in series.values())])
        ax.set_ylim(0, max(1.0, top * 1.15))
        ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if top == 0:
            ax.text(
                0.5,
                0.5,
                "0 in every window",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=14,
                color="grey",
            )
    for i, m in enumerate(marks):
        ax.axvline(m, color="grey", lw=0.8, ls="--", label=mark_label if i == 0 and mark_label else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 2:  # below the plot: a legend inside would hide lines
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    else:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(file, dpi=110, bbox_inches="tight")
    plt.close(fig)


def bar_plot(
    rows: list[dict], name: str, series: dict[str, str], title: str, file: Path, scale: dict[str, float] | None = None
) -> None:
    """One panel per quantity (``series``: panel title -> row key), one bar per row."""
    scale = scale or {}
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 4), squeeze=False)
    labels = [str(r[name]) for r in rows]
    for ax, (label, key) in zip(axes[0], series.items()):
        values = [r[key] * scale.get(key, 1) for r in rows]
        bars = ax.bar(labels, values, color=[f"C{i}" for i in range(len(rows))])
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(label)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=10)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)

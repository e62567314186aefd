"""Write a benchmark's figures: JSON, a Markdown table and PNG plots, with the machine recorded."""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def machine() -> dict:
    import peft
    import torch
    import transformers

    info = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__,
            "peft": peft.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
    except (OSError, StopIteration):
        pass
    return info


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write(out: Path, part: str, rows: list[dict], columns: list[str], settings: dict, plots=()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"part": part, "machine": machine(), "settings": settings, "results": rows}
    (out / f"{part}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = f"## {part}\n\n{markdown_table(rows, columns)}\n\nmachine: `{json.dumps(payload['machine'])}`\n"
    (out / f"{part}.md").write_text(md)
    for plot in plots:
        plot(out)
    return out / f"{part}.md"


def ratio_plot(rows: list[dict], x: str, series: list[str], group: str, title: str, file: Path,
               ylabel: str = "time / bare forward") -> None:
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

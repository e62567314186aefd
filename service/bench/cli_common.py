"""What the ``bedside bench`` commands share: the results folder, printing, list flags."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

from rich.console import Console

console = Console()


def results_folder(out: Optional[Path]) -> Path:
    return out or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")


def show_report(md: Path, folder: Path) -> None:
    console.print(md.read_text())
    console.print(f"written to {folder}")


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())

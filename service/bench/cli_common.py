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


def ratio_report(
    folder: Path,
    part: str,
    rows: list[dict],
    columns: list[str],
    settings: dict,
    series: list[str],
    title: str,
    ylabel: str = "time / bare forward",
    summary: dict | None = None,
) -> None:
    """Write and print a benchmark whose figure is ``series`` (ratios) against batch size, per length."""
    from bedside.adapters import reporting as report

    def plot(d: Path) -> None:
        report.ratio_plot(rows, "batch", series, "length", title, d / f"{part}.png", ylabel=ylabel)

    show_report(report.write(folder, part, rows, columns, settings, plots=[plot], summary=summary), folder)


def series_report(
    folder: Path,
    part: str,
    rows: list[dict],
    columns: list[str],
    settings: dict,
    x: str,
    series: dict[str, str],
    title: str,
    axes: tuple[str, str],
    summary: dict | None = None,
) -> None:
    """Write and print a benchmark whose figure is ``series`` (legend -> row key) against ``x``."""
    from bedside.adapters import reporting as report

    def plot(d: Path) -> None:
        report.series_plot(rows, x, series, title, d / f"{part}.png", *axes)

    show_report(report.write(folder, part, rows, columns, settings, plots=[plot], summary=summary), folder)

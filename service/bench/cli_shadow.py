"""``bedside bench shadow``: a real server's throughput with a shadow version on one task vs
none, same run, and the agreement the shadow reported."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import console, results_folder, show_report


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        task, sep, version = part.strip().partition(":")
        if not sep or not task or not version:
            raise typer.BadParameter(f"{part!r}: expected TASK:VERSION")
        pairs.append((task, version))
    return pairs


def shadow(
    store: Path = typer.Option(..., help="adapter store: an active version of every preset task, and the candidates"),
    shadows: str = typer.Option(
        ..., "--shadow", help="TASK:VERSION[,TASK:VERSION...]: each measured alone as the task's shadow"
    ),
    backbone: str = typer.Option("embedded"),
    concurrency: int = typer.Option(32, help="closed-loop clients"),
    seconds: float = typer.Option(15.0, help="measured seconds per phase (after a 3 s warm-up)"),
    rounds: int = typer.Option(2, help="rounds of (no shadow, each shadow in turn), each one shadow later"),
    words: int = typer.Option(64, help="words per note at most"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Closed-loop load on the four-task mix (each task a quarter of the requests) with no shadow,
    then with each shadow alone, alternating; time per request over no shadow, and the shadows'
    live agreement (a shadow runs the candidate on every request of its task)."""
    from bedside.adapters import reporting as report

    from .shadow import agreement_rows, measure_shadows, summarise, token_shares
    from .workload import requests

    pairs = _pairs(shadows)
    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    items = requests(256, words=words)

    def show(row: dict) -> None:
        console.print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})

    shares = token_shares(store, backbone, items)
    console.print({"token_share_per_task": {t: round(v, 3) for t, v in shares.items()}})
    rows, reports = measure_shadows(
        store, backbone, items, pairs, concurrency, seconds, rounds, folder / "server.log", progress=show
    )
    table = summarise(rows, shares)
    agreement = agreement_rows(reports)
    for row in agreement:
        show(row)
    worst = max((r for r in table if r["shadow"] != "none"), key=lambda r: r["time_per_request_over_none"])
    summary = {
        "concurrency": concurrency,
        "worst_shadow": worst["shadow"],
        "worst_time_per_request_over_none": worst["time_per_request_over_none"],
        "errors": sum(r["errors"] for r in rows),
        "token_share_per_task": shares,
        "agreement": agreement,
        "phases": rows,
    }

    def plot(d: Path) -> None:
        report.bar_plot(
            table,
            "shadow",
            {
                "requests per second": "rps",
                "time per request / no shadow": "time_per_request_over_none",
                "expected: 1 + the task's token share": "expected_from_tokens",
            },
            f"a shadow version's cost, {concurrency} clients, four-task mix",
            d / "shadow.png",
        )

    columns = [
        "shadow",
        "phases",
        "rps",
        "p50_ms",
        "p99_ms",
        "errors",
        "time_per_request_over_none",
        "expected_from_tokens",
    ]
    md = report.write(
        folder,
        "shadow",
        table,
        columns,
        {"store": str(store), "backbone": backbone, "seconds": seconds, "rounds": rounds, "words": words},
        plots=[plot],
        summary=summary,
    )
    agreement_columns = [
        "task",
        "active",
        "candidate",
        "requests_compared",
        "requests_dropped",
        "requests_timeout",
        "requests_failed",
        "items_compared",
        "label_agreement",
        "entity_agreement_f1",
        "mean_abs_probability_difference",
    ]
    with md.open("a") as f:
        f.write("\n### live agreement of each shadow\n\n" + report.markdown_table(agreement, agreement_columns) + "\n")
    show_report(md, folder)

"""``bedside bench soak``: a real server under open-loop load for minutes, with swaps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import console, results_folder


def soak(
    store: Path = typer.Option(
        ...,
        help="adapter store with an active version of every task (not modified "
        "except: a task with a single version gets a copy pushed as a second)",
    ),
    minutes: float = typer.Option(10.0, help="length of the open-loop load"),
    backbone: str = typer.Option("embedded"),
    device: str = typer.Option("auto"),
    rate_fraction: float = typer.Option(0.7, help="load rate as a fraction of the measured capacity"),
    swap_every: float = typer.Option(60.0, help="seconds between activations of another version"),
    swap_task: str = typer.Option("length_of_stay"),
    window: float = typer.Option(10.0, help="seconds per reported window"),
    capacity_seconds: float = typer.Option(20.0, help="closed-loop burst that measures capacity"),
    clients: int = typer.Option(16, help="closed-loop clients for the capacity burst"),
    resident_cap: int = typer.Option(
        0,
        help="the server's inactive versions kept loaded; 0: every swap "
        "loads from disk and frees the version it replaces",
    ),
    poll_interval: float = typer.Option(2.0, help="the server's store polling interval (s)"),
    out: Optional[Path] = typer.Option(None),
) -> None:
    """Real server, open-loop mixed load at a fraction of measured capacity, swaps by store polling."""
    from bedside.adapters import reporting as report

    from .soak import Plan
    from .soak import soak as run_soak

    folder = results_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    plan = Plan(
        seconds=minutes * 60,
        rate_fraction=rate_fraction,
        swap_every=swap_every,
        window_s=window,
        capacity_s=capacity_seconds,
        clients=clients,
        swap_task=swap_task,
    )
    console.print(
        f"soak: {minutes:g} min at {rate_fraction:.0%} of capacity, a {swap_task} swap every "
        f"{swap_every:g} s; server log: {folder / 'server.log'}"
    )
    summary, rows = run_soak(
        store,
        backbone,
        plan,
        folder / "server.log",
        device=device,
        resident_cap=resident_cap,
        poll_interval_s=poll_interval,
    )
    plots = [lambda d: soak_plots(d, rows, [s["t"] for s in summary["swaps"]], window, swap_task)]
    headline = {
        k: summary[k]
        for k in (
            "target_rps",
            "achieved_rps",
            "requests",
            "dropped",
            "errors",
            "error_pct",
            "errors_by_status",
            "p50_ms_first",
            "p50_ms_last",
            "p99_ms_first",
            "p99_ms_last",
            "p99_drift_ms",
            "p99_max_ms",
            "rss_mb_start",
            "rss_mb_first",
            "rss_mb_last",
            "rss_drift_mb",
            "rss_mb_max",
        )
    }
    headline = {
        "capacity_rps": summary["capacity"]["capacity_rps"],
        "capacity_after_rps": summary["capacity_after"]["capacity_rps"],
        **headline,
        "swaps": len(summary["swaps"]),
        "swaps_not_picked_up": sum(s["picked_up_s"] is None for s in summary["swaps"]),
        "swap_pickup_s_max": max(
            (s["picked_up_s"] for s in summary["swaps"] if s["picked_up_s"] is not None), default=float("nan")
        ),
    }
    columns = ["window", "t_end_s", "requests", "errors", "p50_ms", "p99_ms", "rss_mb", "load_1m"]
    md = report.write(
        folder,
        "soak",
        rows,
        columns,
        {
            "store": str(store),
            "backbone": backbone,
            "device": device,
            "resident_cap": resident_cap,
            "poll_interval_s": poll_interval,
            **summary["plan"],
        },
        plots=plots,
        summary={
            **headline,
            "swap_task_versions": summary["swap_task_versions"],
            "swap_versions_answered": summary["swap_versions_answered"],
            "capacity": summary["capacity"],
            "capacity_after": summary["capacity_after"],
            "swap_events": summary["swaps"],
        },
    )
    console.print(md.read_text().split("machine:")[0])
    console.print(f"written to {folder}")
    if summary["server_errors"]:
        raise typer.Exit(1)


def soak_plots(folder: Path, rows: list[dict], swaps_s: list[float], window: float, swap_task: str) -> None:
    """Latency, RSS and errors per window, swaps marked (also rebuilds them from a soak.json's results)."""
    from bedside.adapters import reporting as report

    statuses = sorted({s for r in rows for s in r["errors_by_status"]})
    for r in rows:
        r["t_min"] = r["t_end_s"] / 60
        r.update({f"status_{s}": r["errors_by_status"].get(s, 0) for s in statuses})
    marks, mark = [t / 60 for t in swaps_s], f"{swap_task} swap"
    xlabel = "time since load start (min, window end)"
    total = sum(r["requests"] for r in rows)
    report.series_plot(
        rows,
        "t_min",
        {"p50": "p50_ms", "p99": "p99_ms"},
        f"latency per {window:g} s window",
        folder / "soak_latency.png",
        xlabel,
        "latency (ms)",
        marks,
        mark,
    )
    report.series_plot(
        rows,
        "t_min",
        {"server RSS (process tree)": "rss_mb"},
        "server memory",
        folder / "soak_rss.png",
        xlabel,
        "RSS (MB)",
        marks,
        mark,
    )
    errors = {f"status {s}": f"status_{s}" for s in statuses} or {"errors (non-200)": "errors"}
    report.series_plot(
        rows,
        "t_min",
        errors,
        f"errors per {window:g} s window ({sum(r['errors'] for r in rows)} of {total} requests)",
        folder / "soak_errors.png",
        xlabel,
        "requests answered non-200",
        marks,
        mark,
        style="bar",
    )

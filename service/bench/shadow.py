"""What a shadow version costs a real server: closed-loop load on the mixed four-task workload
with no shadow, then with one shadow per given (task, version), alternating so the machine's
drift falls on both sides; and the agreement each shadow reported meanwhile."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from pathlib import Path

from .service import closed_loop

TOKEN = "bench-admin"  # the admin token of the server this benchmark starts (loopback only)


def measure_shadows(
    store: Path,
    backbone: str,
    items,
    shadows: list[tuple[str, str]],
    concurrency: int,
    seconds: float,
    rounds: int,
    log_file: Path,
    progress: Callable[[dict], None] = lambda row: None,
) -> tuple[list[dict], list[dict]]:
    """Rows (one per measured phase: ``shadow`` "none" or "TASK:VERSION") and the final shadow
    report of each shadowed task. Every shadow is aborted before the server stops."""
    from ..client import BedsideClient
    from ..server import served

    rows: list[dict] = []
    # A no-shadow phase opens every round and closes the last; each round starts one shadow
    # later, so no shadow always runs last in its round (the machine drifts within a round).
    phases: list[tuple[str, str] | None] = []
    for r in range(rounds):
        k = r % len(shadows)
        phases += [None, *shadows[k:], *shadows[:k]]
    phases.append(None)
    with (
        served(log_file, timeout=600, store=store, backbone=backbone, device="cpu", admin_tokens=TOKEN) as (url, _),
        BedsideClient(url, token=TOKEN, timeout=60) as admin,
    ):
        for phase in phases:
            if phase is not None:
                admin.shadow(*phase)
            try:
                row = asyncio.run(closed_loop(url, items, concurrency, seconds))
            finally:
                if phase is not None:
                    admin.abort(phase[0])
            row["shadow"] = "none" if phase is None else f"{phase[0]}:{phase[1]}"
            rows.append(row)
            progress(row)
        reports = [admin.shadow_report(task) for task in sorted({t for t, _ in shadows})]
    return rows, reports


def token_shares(store: Path, backbone: str, items) -> dict[str, float]:
    """Each task's share of the workload's tokens, tokenised as served: a shadow on that task adds
    about this share to every forward, so ``1 + share`` is the time per request to expect."""
    from collections import Counter

    from .service import encoded, load_runtime

    runtime = load_runtime(store, backbone)
    try:
        rows, slots = encoded(runtime, items)
        tasks = {s.resident.slot: t for t, s in runtime.states.items() if s.resident}
    finally:
        runtime.stop()
    tokens: Counter[str] = Counter()
    for row, slot in zip(rows, slots):
        tokens[tasks[slot]] += len(row)
    total = sum(tokens.values())
    return {task: n / total for task, n in tokens.items()}


def summarise(rows: list[dict], shares: dict[str, float] | None = None) -> list[dict]:
    """One row per phase kind: mean rate, median latencies, time per request over no shadow, and
    (``shares``) what the shadowed task's share of the tokens predicts."""
    kinds = list(dict.fromkeys(r["shadow"] for r in rows))
    none_rps = statistics.fmean(r["rps"] for r in rows if r["shadow"] == "none")
    out = []
    for kind in kinds:
        mine = [r for r in rows if r["shadow"] == kind]
        rps = statistics.fmean(r["rps"] for r in mine)
        out.append(
            {
                "shadow": kind,
                "phases": len(mine),
                "rps": rps,
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
                "time_per_request_over_none": none_rps / rps,
            }
        )
        if shares is not None:
            out[-1]["expected_from_tokens"] = 1.0 if kind == "none" else 1 + shares[kind.split(":")[0]]
    return out


def agreement_rows(reports: list[dict]) -> list[dict]:
    """The shadow reports, flattened: one row per (task, active, candidate)."""
    rows = []
    for report in reports:
        for pair in report["pairs"]:
            rows.append(
                {
                    "task": report["task"],
                    "active": pair["active"],
                    "candidate": pair["candidate"],
                    **{f"requests_{k}": v for k, v in pair["requests"].items()},
                    "items_compared": pair["items_compared"],
                    "label_agreement": pair["label_agreement"],
                    "entity_agreement_f1": pair["entity_agreement_f1"],
                    "mean_abs_probability_difference": pair["mean_abs_probability_difference"],
                }
            )
    return rows

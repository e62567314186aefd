"""The tidy results table: one row per run (CSV), merged from every run's result.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .runner import RESULT

# What a run's result.json says about the run itself, and what its cost record adds.
RUN_FIELDS = [
    "run_id",
    "study",
    "backbone",
    "domain",
    "backbone_params",
    "method",
    "task",
    "task_kind",
    "seed",
    "rank",
    "few_shot",
    "time_budget",
    "status",
    "error",
]
COST_FIELDS = [
    "trainable_params",
    "train_seconds",
    "time_to_best_s",
    "peak_rss_mb",
    "eval_examples_per_s",
    "train_examples_per_s",
]
SCORE_FIELDS = ["metric", "score", "score_low", "score_high", "val_score"]  # low/high: 95 % bootstrap
# The table's leading columns (test_* metrics follow): identity, cost and scores in reading order.
COLUMNS = [*RUN_FIELDS[:6], COST_FIELDS[0], *RUN_FIELDS[6:12], *SCORE_FIELDS, *COST_FIELDS[1:], *RUN_FIELDS[12:]]


def flatten(result: dict) -> dict:
    row = {k: result.get(k) for k in RUN_FIELDS}
    metrics, cost = result.get("metrics") or {}, result.get("cost") or {}
    val = next((k for k in metrics if k.startswith("val_")), None)
    if val:
        name = val[len("val_") :]
        low, high = (result.get("intervals") or {}).get(name) or (None, None)
        row.update(
            metric=name, score=metrics.get(f"test_{name}"), score_low=low, score_high=high, val_score=metrics.get(val)
        )
    row.update({key: cost.get(key) for key in COST_FIELDS})
    row.update({k: v for k, v in metrics.items() if k.startswith("test_")})
    return row


def collect(out: Path) -> list[dict]:
    rows = []
    for file in sorted((out / "runs").glob(f"*/{RESULT}")):
        try:
            rows.append(flatten(json.loads(file.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # being written by another worker
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + extra)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def read_csv(path: Path) -> list[dict]:
    def parse(value: str):
        if value == "":
            return None
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with open(path, newline="", encoding="utf-8") as f:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(f)]

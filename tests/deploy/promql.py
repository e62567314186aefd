"""Just enough PromQL reading to list the metric names, label names and label values that an
expression uses (for checking rules, dashboards and autoscaling rules against /metrics)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "atan2"}
# Labels that come from the scrape (target labels, Kubernetes discovery), not from the service.
TARGET_LABELS = {"job", "instance", "service", "namespace", "pod", "container", "endpoint_kube", "site"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Usage:
    metrics: set[str] = field(default_factory=set)
    # metric -> label names used in its selector's matchers
    matchers: dict[str, set[str]] = field(default_factory=dict)
    # label -> literal values (or regex alternatives) compared against
    values: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse(expr: str, usage: Usage | None = None) -> Usage:
    usage = usage or Usage()
    # Selectors with matchers: name{label op "value", ...}
    for name, body in re.findall(rf"({NAME})?\s*\{{([^}}]*)\}}", expr):
        for label, op, value in re.findall(rf'({NAME})\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"', body):
            if name:
                usage.matchers.setdefault(name, set()).add(label)
            if not value.startswith("$"):
                parts = value.split("|") if op in ("=~", "!~") else [value]
                usage.values.setdefault(label, set()).update(parts)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"'(?:\\.|[^'\\])*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)             # matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)            # ranges and subqueries
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        usage.grouping.update(x.strip() for x in clause.split(",") if x.strip())
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(rf"(?<![\w.$]){NAME}", text):
        token = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or token.lower() in KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        usage.metrics.add(token)
    return usage


def grafana_template(query: str, usage: Usage) -> None:
    """``label_values(selector, label)`` of a Grafana template variable."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(" + NAME + r")\s*\)\s*", query)
    if match:
        parse(match.group(1), usage)
        usage.grouping.add(match.group(2))
    else:
        parse(query, usage)


def exported(metrics_text: str) -> dict[str, set[str]]:
    """Family name (histogram suffixes stripped) -> label names seen, from a /metrics page."""
    families: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(rf"({NAME})(?:\{{([^}}]*)\}})?\s", line)
        if not match:
            continue
        labels = set(re.findall(rf'({NAME})="', match.group(2) or ""))
        families.setdefault(base_name(match.group(1)), set()).update(labels - {"le"})
    return families

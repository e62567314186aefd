"""Prometheus config, rules, dashboard and autoscaling metrics against a real bedside server."""
from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest
import yaml

from .conftest import DEPLOY, free_port, tool, wait_for
from .promql import TARGET_LABELS, Usage, base_name, exported, grafana_template, parse

PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "bedside.json"
ADAPTER_CONFIG = DEPLOY / "k8s" / "examples" / "prometheus-adapter-config.yaml"
HPA = DEPLOY / "k8s" / "base" / "hpa.yaml"


def service_outcomes() -> set[str]:
    """What the service can record as outcome= of bedside_requests_total (service/http_log.py)."""
    from bedside.service.http_log import outcome_of

    statuses = (400, 401, 404, 408, 413, 415, 422, 429, 499, 500, 503, 504)
    return {"ok"} | {outcome_of(s) for s in statuses}


OUTCOMES = service_outcomes()
PROMETHEUS_OWN = {"up"}

PROMTOOL = tool("promtool")
PROMETHEUS = tool("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package "
                                    "`prometheus`; .ci/run installs it)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus server is not installed "
                                      "(Debian package `prometheus`; .ci/run installs it)")


# -- what the deploy files use ---------------------------------------------------------------------
def rule_groups() -> list[dict]:
    return [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def rules_usage() -> Usage:
    usage = Usage()
    for group in rule_groups():
        for rule in group["rules"]:
            parse(rule["expr"], usage)
    return usage


def dashboard_usage() -> Usage:
    usage = Usage()
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            parse(target["expr"], usage)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            grafana_template(query["query"] if isinstance(query, dict) else query, usage)
    return usage


def adapter_rules() -> list[dict]:
    config = yaml.safe_load(ADAPTER_CONFIG.read_text())
    return yaml.safe_load(config["data"]["config.yaml"])["rules"]


def adapter_usage() -> Usage:
    usage = Usage()
    for rule in adapter_rules():
        parse(rule["seriesQuery"], usage)
    return usage


# -- promtool ---------------------------------------------------------------------------------------
@needs_promtool
def test_promtool_check_config():
    result = subprocess.run([PROMTOOL, "check", "config", str(PROM / "prometheus.yml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules():
    assert {p.name for p in RULE_FILES} == {"recording.yml", "alerts.yml"}
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, RULE_FILES)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests():
    """deploy/prometheus/tests: each alert fires (and stays quiet) on made-up series as intended."""
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    result = subprocess.run([PROMTOOL, "test", "rules", *map(str, tests)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def unit_test_usage() -> Usage:
    usage = Usage()
    for path in sorted((PROM / "tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                parse(series["series"], usage)
    return usage


def test_config_loads_every_rule_file():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    listed = {(PROM / name).resolve() for name in config["rule_files"]}
    assert listed == {p.resolve() for p in RULE_FILES}
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "bedside" in jobs  # what the alerts and the dashboard select on


def test_alerts_cover_the_runbook():
    """The alerts the service needs, each with a severity and a summary."""
    alerts = {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    exprs = " ".join(rule["expr"] for rule in alerts.values())
    recorded = {rule["record"]: rule["expr"] for group in rule_groups() for rule in group["rules"]
                if "record" in rule}
    expanded = exprs + " " + " ".join(recorded[name] for name in recorded if name in exprs)
    for needle in ("bedside_request_duration_seconds", 'outcome="rejected"', "bedside_task_ready",
                   'bedside_adapter_swaps_total{outcome="error"}', 'up{job="bedside"} == 0', "bedside_queue_rows"):
        assert needle in expanded, needle
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
    for q in ("p50", "p95", "p99"):
        assert any(name.startswith("task:bedside_request_duration_seconds:" + q) for name in recorded), q


def test_recording_rules_used_are_defined():
    recorded = recorded_names()
    for usage in (rules_usage(), dashboard_usage()):
        missing = {m for m in usage.metrics if ":" in m} - recorded
        assert not missing, f"recording rules used but not defined: {missing}"


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("latency", "requests per second", "rows per encoder forward", "queue", "swaps",
                  "resident", "errors"):
        assert topic in titles, topic


def test_hpa_metrics_come_from_the_adapter_rules():
    hpa = yaml.safe_load(HPA.read_text())
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert wanted, "the HPA scales on no Pods metric"
    served = set()
    for rule in adapter_rules():
        served.add(rule["name"]["as"])
        assert "<<.GroupBy>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert wanted <= served, f"HPA metrics without an adapter rule: {wanted - served}"


# -- against a real server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scraped(bedside_server):
    """The server's /metrics after traffic on all four tasks (one shadowed, one with a canary), a
    429 and a 413."""
    bedside_server.start_rollouts()
    bedside_server.predict_all()
    bedside_server.reject_one()
    bedside_server.too_many_items()
    text = bedside_server.metrics()
    assert "bedside_requests_total" in text, text[:500]
    return exported(text), text


def test_every_metric_used_is_exported(scraped):
    families, _ = scraped
    recorded = recorded_names()
    for source, usage in (("rules", rules_usage()), ("dashboard", dashboard_usage()),
                          ("prometheus-adapter rules", adapter_usage()), ("rule unit tests", unit_test_usage())):
        raw = {base_name(m) for m in usage.metrics if ":" not in m} - PROMETHEUS_OWN
        assert raw, source
        missing = raw - set(families)
        assert not missing, f"{source} use metrics the service does not export: {sorted(missing)}"
        assert not {m for m in usage.metrics if ":" in m} - recorded


def test_every_label_used_is_exported(scraped):
    families, _ = scraped
    all_labels = set().union(*(labels for name, labels in families.items() if name.startswith("bedside_")))
    for source, usage in (("rules", rules_usage()), ("dashboard", dashboard_usage()),
                          ("rule unit tests", unit_test_usage())):
        for metric, labels in usage.matchers.items():
            name = base_name(metric)
            if name in PROMETHEUS_OWN or ":" in name:
                continue
            unknown = labels - families[name] - TARGET_LABELS - {"le"}
            assert not unknown, f"{source}: {metric} has no label(s) {unknown}"
        unknown = usage.grouping - all_labels - TARGET_LABELS - {"le", "version"}
        assert not unknown, f"{source} group by labels no bedside metric has: {unknown}"


def test_outcomes_used_are_ones_the_service_records(scraped):
    _, text = scraped
    seen = set()
    for line in text.splitlines():
        if line.startswith("bedside_requests_total{"):
            seen.update(re.findall(r'outcome="([^"]+)"', line))
    assert {"ok", "rejected", "client_error"} <= seen, seen
    for source, usage in (("rules", rules_usage()), ("dashboard", dashboard_usage()),
                          ("rule unit tests", unit_test_usage())):
        unknown = usage.values.get("outcome", set()) - OUTCOMES
        assert not unknown, f"{source} compare outcome= with values the service never records: {unknown}"
    swaps = [line for line in text.splitlines() if line.startswith("bedside_adapter_swaps_total{")]
    assert swaps and all('outcome="' in line for line in swaps)


def test_every_task_reports_ready(scraped):
    _, text = scraped
    for task in ("mortality", "length_of_stay", "ner", "relations"):
        assert f'bedside_task_ready{{task="{task}"}} 1.0' in text, task


# -- a real Prometheus scraping the server ---------------------------------------------------------------
@pytest.fixture()
def prometheus(tmp_path, bedside_server):
    port = free_port()
    target = bedside_server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [{"job_name": "bedside", "metrics_path": "/metrics", "scrape_interval": "1s",
                            "scrape_timeout": "900ms", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is None and httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
                 timeout=30, what="prometheus ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if process.returncode not in (0, -15):
            print((tmp_path / "prometheus.log").read_text()[-3000:])


def query(url: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scalar(url: str, expr: str) -> float | None:
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else None


@needs_prometheus
def test_prometheus_scrapes_the_service(prometheus, bedside_server):
    bedside_server.predict_all()  # so that bedside_requests_total exists before the first scrape
    up = wait_for(lambda: scalar(prometheus, 'up{job="bedside"}') == 1, timeout=20, what="target up")
    assert up
    before = wait_for(lambda: scalar(prometheus, "sum(bedside_requests_total)"), timeout=20,
                      what="first scrape of bedside_requests_total")
    bedside_server.predict_all()
    bedside_server.reject_one()
    after = wait_for(lambda: (v := scalar(prometheus, "sum(bedside_requests_total)")) and v >= before + 6 and v,
                     timeout=20, what="bedside_requests_total grew")
    assert after >= before + 6
    # Per-task series and the recording rules evaluate on real data.
    tasks = {r["metric"]["task"] for r in query(prometheus, "sum by (task) (bedside_requests_total)")}
    assert {"mortality", "length_of_stay", "ner", "relations"} <= tasks
    rejected = scalar(prometheus, 'sum(bedside_requests_total{outcome="rejected"})')
    assert rejected and rejected >= 1
    ready = query(prometheus, "bedside_task_ready")
    assert len(ready) == 4 and all(r["value"][1] == "1" for r in ready)
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in rules} >= {"bedside.latency", "bedside.traffic", "bedside.alerts"}
    health = {r["name"]: r["health"] for g in rules for r in g["rules"] if r.get("health") == "err"}
    assert not health, health

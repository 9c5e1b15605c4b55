"""What operators are given in deploy/: Prometheus's scrape config and alert rules pass
``promtool`` (syntax, and the rules' own unit tests in alerts_test.yml), scrape the ports
the stack really uses, and every query of the rules and of the Grafana dashboard names
metrics the services or the gateway export.

promtool comes with Debian's ``prometheus`` package, which deploy/setup.sh installs (CI
runs it before these tests): it is required, not skipped."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.platform.monitoring_names import (
    GATEWAY_LUA,
    ROOT,
    dashboard_queries,
    exported_metric_names,
    gateway_metric_names,
    metric_names,
    rule_queries,
    unknown_metrics,
)
from ticketing.config import Settings

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "ticketing.json"
SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run deploy/setup.sh (it installs Debian's prometheus)")
    return found


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    return exported_metric_names()


def run(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def load_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return rules


def test_promtool_accepts_the_rules_and_the_config(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", "deploy/prometheus/alerts.yml")
    assert "SUCCESS" in run(promtool, "check", "config", "deploy/prometheus/prometheus.yml")


def test_the_alerts_fire_on_their_cases_and_not_on_look_alikes(promtool: str) -> None:
    """alerts_test.yml: a stalled queue fires, a paused, held, full or moving one does not;
    Stripe errors, a dead letter, the Typesense fallback, a slow confirm, a target down."""
    assert "SUCCESS" in run(promtool, "test", "rules", "deploy/prometheus/alerts_test.yml")


def test_promtool_check_fails_on_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The control: the check above can fail."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n")
    done = subprocess.run(
        [promtool, "check", "rules", str(broken)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    rules = [rule for group in load_rules()["groups"] for rule in group["rules"]]
    wanted = {
        "QueueStalled",
        "QueuePausedTooLong",
        "BookingLag",
        "PaymentProviderErrors",
        "BookingDeadLettersGrowing",
        "TypesenseDegraded",
        "ServiceDown",
        "HighServerErrorRate",
    }
    assert wanted <= {rule["alert"] for rule in rules}
    for rule in rules:
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert "README.md" in rule["annotations"]["description"], name


def test_every_rule_names_metrics_the_services_export(exported: frozenset[str]) -> None:
    assert unknown_metrics(rule_queries(load_rules()), exported) == []


def test_every_dashboard_panel_names_metrics_the_services_export(
    exported: frozenset[str],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels), "a panel without a query"
    assert len(queries) > len(panels)  # the variable's query too
    assert unknown_metrics(queries, exported) == []


def test_a_panel_naming_a_made_up_metric_fails_the_check(exported: frozenset[str]) -> None:
    """The control: the dashboard check tells a made-up metric, and a query naming none."""
    dashboard = {
        "panels": [
            {
                "type": "row",
                "panels": [
                    {
                        "title": "made up",
                        "targets": [
                            {"refId": "A", "expr": "sum(rate(ticketing_http_requests_total[5m]))"},
                            {"refId": "B", "expr": 'rate(ticketing_made_up_total{a="b"}[5m])'},
                        ],
                    }
                ],
            },
            {"title": "no metric", "targets": [{"refId": "A", "expr": "vector(1)"}]},
        ]
    }
    problems = unknown_metrics(dashboard_queries(dashboard), exported)
    assert problems == [
        "panel 'made up' target B: ticketing_made_up_total is exported by no service",
        "panel 'no metric' target A: names no metric: 'vector(1)'",
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, command) (rate(a_bucket{x=~"y|z"}[5m]))) > 2.5',
            {"a_bucket"},
        ),
        ("max by (event_id) (a) >= on (event_id) group_left (k) max(b) offset 1h30m", {"a", "b"}),
        ('sum without (instance) (a{s="b(c)"}) unless count(d) * 1e3 and bool e', {"a", "d", "e"}),
        ('rate(a[$__rate_interval]) / ignoring(x) b{event_id=~"$event"}', {"a", "b"}),
        ("absent(up == 0) or vector(0) + Inf - NaN", {"up"}),
        ("sum(rate(a:recorded:rate5m[5m:1m]))", {"a:recorded:rate5m"}),
    ],
)
def test_metric_names_of_a_query(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_gateway_metrics_are_read_from_its_lua() -> None:
    names = gateway_metric_names(GATEWAY_LUA.read_text())
    assert {
        "ticketing_gateway_queue_joins_total",
        "ticketing_gateway_queue_join_fallbacks_total",
        "ticketing_gateway_queue_estimated_wait_seconds_bucket",  # its name is in a variable
    } <= names


def test_prometheus_scrapes_the_ports_the_stack_uses() -> None:
    """Against the defaults of ticketing/config.py and deploy/Procfile's worker ports."""
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    first_wr, wr_count = defaults["waitingroom_port"], defaults["waitingroom_processes"]
    worker = defaults["booking_worker_metrics_port"]
    procfile = (ROOT / "deploy" / "Procfile").read_text()
    # booking_worker_2 and booking_payments say how far up from the first worker's port.
    offsets = [int(n) for n in re.findall(r"METRICS_PORT:-\d+\}\+(\d+)\)", procfile)]
    assert offsets, "deploy/Procfile: the workers' metrics ports moved"
    wanted = {
        "catalog_api": {defaults["catalog_port"]},
        "waitingroom": set(range(first_wr, first_wr + wr_count + defaults["frontdoor_processes"])),
        "search_sync": {defaults["search_sync_metrics_port"]},
        "booking_worker": {worker} | {worker + n for n in offsets},
        "gateway": {defaults["gateway_metrics_port"]},
    }
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    scraped = {
        job["job_name"]: {
            int(target.rsplit(":", 1)[1])
            for static in job["static_configs"]
            for target in static["targets"]
        }
        for job in config["scrape_configs"]
    }
    assert scraped == wanted
    assert config["rule_files"] == ["alerts.yml"]

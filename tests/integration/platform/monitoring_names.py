"""The metric names the services and the gateway export, and the names a PromQL query
reads: what test_monitoring holds the alert rules and the dashboard to.

The services' names come from their own registrations (every module of every service
imported, then prometheus_client's registry read), the gateway's from the ``# TYPE``
lines its Lua writes: so a metric renamed in the code fails the check, not only one
misspelt in deploy/."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
SERVICE_PACKAGES = ("ticketing", "catalog_api", "waitingroom", "booking_worker", "search_sync")
GATEWAY_LUA = ROOT / "deploy" / "lua" / "queue_join.lua"
# Series Prometheus writes itself: one per target, and the alerts' own.
PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})

# The names a family of each type is exposed under, from its base name (prometheus_client's
# family names carry no _total; the text format's counter names do, and keep it here).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def exposed(name: str, kind: str) -> set[str]:
    base = name.removesuffix("_total") if kind == "counter" else name
    return {base + suffix for suffix in SUFFIXES[kind]}


def service_metric_names() -> set[str]:
    for package in SERVICE_PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, package + "."):
            if not module.name.endswith("__main__"):  # entry points run when imported
                importlib.import_module(module.name)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= exposed(family.name, family.type)
    return names


LUA_BINDING = re.compile(r'local\s+(\w+)\s*=\s*"([a-zA-Z_:][\w:]*)"')
LUA_TYPE = re.compile(r'"# TYPE (?:([a-zA-Z_:][\w:]*)|"\s*\.\.\s*(\w+)\s*\.\.\s*") (\w+)"')


def gateway_metric_names(lua: str) -> set[str]:
    """From ``# TYPE <name> <type>`` lines of the Lua source, the name written out or held
    in a local variable (``"# TYPE " .. name .. " histogram"``)."""
    bindings = dict(LUA_BINDING.findall(lua))
    names: set[str] = set()
    for literal, variable, kind in LUA_TYPE.findall(lua):
        name = literal or bindings.get(variable)
        if name is None:
            raise AssertionError(f"Lua # TYPE line names variable {variable!r}, bound nowhere")
        # Its Lua writes no _created samples (prometheus_client's own addition).
        names |= {n for n in exposed(name, kind) if not n.endswith("_created")}
    return names


def exported_metric_names() -> frozenset[str]:
    gateway = gateway_metric_names(GATEWAY_LUA.read_text())
    return frozenset(service_metric_names() | gateway | PROMETHEUS_OWN)


# --- PromQL ----------------------------------------------------------------------------------

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "atan2", "inf", "nan"}
    # Aggregations may be followed by their "by (...)" rather than their "(": never metrics.
    | {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
MATCHERS = re.compile(r"\{[^}]*\}")
RANGES = re.compile(r"\[[^\]]*\]")
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
NUMBERS = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d[\w.]*|\.\d[\w.]*)")
IDENTIFIER = re.compile(r"[a-zA-Z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping label lists, numbers, durations, Grafana's variables,
    function calls and keywords are taken out."""
    text = GRAFANA_VARIABLES.sub(" ", expr)
    text = STRINGS.sub('""', text)
    text = MATCHERS.sub(" ", text)
    text = RANGES.sub(" ", text)
    text = LABEL_LISTS.sub(r"\1 ", text)
    text = NUMBERS.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function (or an aggregation called at once)
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names


# --- where the queries are ---------------------------------------------------------------------


def dashboard_panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows (collapsed rows hold theirs) included; rows not."""
    for panel in panels:
        if panel.get("type") == "row":
            yield from dashboard_panels(panel.get("panels", []))
        else:
            yield panel


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$")


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of the dashboard."""
    queries = [
        (f"panel {panel.get('title')!r} target {target.get('refId')}", target.get("expr", ""))
        for panel in dashboard_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        selector = LABEL_VALUES.match(text)
        queries.append((f"variable {variable['name']!r}", selector[1] if selector else text))
    return queries


def rule_queries(rules: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"rule {rule.get('alert') or rule.get('record')!r}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def unknown_metrics(queries: Iterable[tuple[str, str]], known: frozenset[str]) -> list[str]:
    """One line per query that selects no metric, or one nobody exports."""
    problems = []
    for where, expr in queries:
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: names no metric: {expr!r}")
        problems += [f"{where}: {name} is exported by no service" for name in names - known]
    return problems

"""bench/chaos_cluster.py's results: a row per node lost, the order check of the fans
waiting at each loss, the on-sale's ledger, PASS/FAIL per check (printed, and returned for
the results file)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from bench import chaos_report as cr
from bench import onsale_report as report
from bench.chaos_cluster_faults import Marks
from bench.chaos_cluster_report import interrupted, resume
from bench.chaos_faults import ChaosProcs, Schedule
from bench.chaos_table import (
    ledger_checks,
    order_checks,
    print_checks,
    print_sale,
    print_table,
    summary,
    tree,
)

# Issue 13 item 6: joins and reserves serve again within these seconds of the node's loss.
TARGETS = {"redis": 15.0, "rabbitmq": 15.0, "postgres": 60.0}
READS = ("search", "view")  # Typesense's target: not one of them failed or degraded
COLUMNS = [
    ("fault", "fault"),
    ("taken_over", "taken over s"),
    ("away", "away s"),
    ("rejoined", "rejoined s"),
    *[(route, route) for route in cr.ROUTES],
    ("slowest", "slowest join / reserve s"),
    ("reads_failed", "reads failed"),
    ("fivexx", "5xx (after return)"),
    ("unanswered", "no answer"),
    ("reserve_403", "reserve 403"),
]


def seconds(later: float | None, earlier: float | None) -> str:
    return "-" if later is None or earlier is None else f"{later - earlier:.1f}"


def fault_rows(
    schedule: Schedule, marks: dict[str, Marks], attempts: list[cr.Attempt], end: float
) -> list[dict[str, Any]]:
    columns = cr.by_column(attempts)
    rows = []
    for rec in schedule.records:
        m = marks.get(rec.key)
        killed = m.killed if m else rec.started
        returned = (m.restarted if m else None) or end
        until = rec.window_end or end
        resumed = {c: resume(columns[c], killed, returned) for c in cr.ROUTES}
        reads = [a for c in READS for a in columns[c]]
        counts = cr.window_counts(attempts, killed, until, returned)
        rows.append(
            {
                "key": rec.key,
                "fault": rec.label,
                "taken_over": seconds(m.taken_over, killed) if m else "-",
                "away": seconds(m.restarted, killed) if m else "-",
                "away_s": returned - killed,
                "rejoined": seconds(m.rejoined, m.restarted) if m else "-",
                **{c: r.cell() for c, r in resumed.items()},
                "resumed_s": {c: r.seconds for c, r in resumed.items()},
                "asked": {c: r.asked for c, r in resumed.items()},
                "failures": {c: r.failures for c, r in resumed.items()},
                "slowest": " / ".join(f"{resumed[c].longest:.1f}" for c in ("join", "reserve")),
                "reads_failed": interrupted(reads, killed, until),
                "reads_asked": sum(killed <= a.at <= until for a in reads),
                **asdict(counts),
                "detail": rec.detail or rec.error,
                "killed": killed,
                "restarted": m.restarted if m else None,
                "rejoined_at": m.rejoined if m else None,
                "window_end": rec.window_end,
            }
        )
    return rows


def target_checks(rows: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    checks = []
    for row in rows:
        key, label = row["key"], row["fault"]
        if key in TARGETS:
            limit = TARGETS[key]
            for route in ("join", "reserve"):
                # resumed while the node was away: its return is no failover's doing
                took, asked = row["resumed_s"][route], row["asked"][route]
                said = "no request while the node was away" if not asked else row[route] + " s"
                if took is not None and took >= row["away_s"]:
                    said += ", after the node was back"
                passed = bool(asked) and took is not None and took < min(limit, row["away_s"])
                checks.append((passed, f"{label}: {route}s resumed in < {limit:.0f} s ({said})"))
        if key == "typesense":
            failed, asked = row["reads_failed"], row["reads_asked"]
            checks.append(
                (
                    asked > 0 and failed == 0,
                    f"{label}: searches and views uninterrupted ({failed} of {asked} failed "
                    "or degraded, from the kill to the end of its window)",
                )
            )
    return checks


def print_results(
    args: argparse.Namespace,
    keys: list[str],
    schedule: Schedule,
    marks: dict[str, Marks],
    procs: ChaosProcs,
    servers_line: str,
    sale: dict[str, Any],
    figures: report.RunFigures,
    attempts: list[cr.Attempt],
    line_differences: list[str],
) -> dict[str, Any]:
    """``line_differences``: where the queue's line at the end and the fans' own accounts
    differ (bench/chaos_cluster_report.py)."""
    fans = sale["loads"]["fans"]
    end = max((a.at for a in attempts), default=0.0)
    rows = fault_rows(schedule, marks, attempts, end)
    print()
    print(
        f"cluster chaos on-sale: {args.fans:,} fans, {args.seats:,} seats, admitting "
        f"{args.admit_per_minute:,}/min, nodes away {args.absence:.0f} s, windows of "
        f"{args.window:.0f} s; tree {tree()}"
    )
    print(servers_line)
    print(
        "join, queue (status and sockets), reserve, confirm, search, view: seconds from the "
        "kill to the answer of the first success sent after it and after the last failure "
        "while the node was away (with no failure: the first request sent after the kill); "
        "slowest: the longest a join / reserve of the node's absence waited for its answer; "
        "reads failed: searches and views failed or degraded, and the counts after it, from "
        "the kill to the end of the window"
    )
    print_table(rows, COLUMNS)
    # strict: the queue is never lost, so nobody is excused for not being back in line
    moments = [(r["fault"], r["killed"], False) for r in rows]
    orders = order_checks(fans, moments, args, "kill")
    for line in figures.ledger + figures.double_sold:
        print(f"ledger: {line}")
    for line in line_differences:
        print(f"the queue's line at the end: {line}")
    outcomes = print_sale(sale, figures, procs)
    refused = sum(r["reserve_403"] for r in rows)
    checks = [
        (
            len(rows) == len(keys)
            and all(r["rejoined_at"] and r["taken_over"] != "-" for r in rows),
            f"every node was lost, its cluster took over and it rejoined ({len(rows)} of "
            f"{len(keys)})",
        ),
        *target_checks(rows),
        (not procs.unasked, f"no service exited unasked ({len(procs.unasked)})"),
        *ledger_checks(figures, figures.ledger, fans),
        (
            not line_differences,
            "the queue's line at the end holds the fans who say they hold a place, fan by fan "
            f"({len(line_differences)} differ)",
        ),
        *[(o.holds, f"fans kept their places in order across {k}") for k, o in orders.items()],
        (refused == 0, f"admitted fans kept their admission ({refused:,} reserves refused 403)"),
    ]
    print_checks(checks)
    return summary(rows, orders, checks, outcomes, figures, procs)

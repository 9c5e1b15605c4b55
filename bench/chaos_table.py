"""bench/chaos.py's results: the table per fault, the order checks of the Redis restarts,
the on-sale's ledger and the fans' answers, PASS/FAIL per check (printed, and returned for
--summary)."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from bench import chaos_report as cr
from bench import onsale_report as report
from bench.chaos_faults import ChaosProcs, Schedule
from bench.chaos_servers import PrivateServers

COLUMNS = [
    ("fault", "fault"),
    ("down_s", "down s"),
    ("join", "join"),
    ("queue", "queue"),
    ("reserve", "reserve"),
    ("confirm", "confirm"),
    ("search", "search"),
    ("view", "view"),
    ("sale_back", "sale rate back s"),
    ("fivexx", "5xx (after back)"),
    ("unanswered", "no answer"),
    ("reserve_403", "reserve 403"),
    ("degraded_searches", "degraded searches"),
]
REDIS_FAULTS = ("redis_kept", "redis_lost")
# A counter that lives in Redis: after a data loss it starts again from nothing.
COUNTER_LINE = "admitted, the fans heard"


def fault_rows(
    schedule: Schedule, attempts: list[cr.Attempt], sales: list[tuple[float, int]], end: float
) -> list[dict[str, Any]]:
    columns = cr.by_column(attempts)
    typical = cr.typical_rate(sales)
    rows = []
    for rec in schedule.records:
        until = rec.window_end or end
        back = rec.back or until
        rows.append(
            {
                "key": rec.key,
                "fault": rec.label,
                "down_s": f"{back - rec.started:.1f}" if rec.back else "not back",
                **{c: cr.recovery(columns[c], rec.started, back, until) for c in cr.ROUTES},
                "sale_back": cr.sale_rate_back(sales, back, until, typical),
                **asdict(cr.window_counts(attempts, rec.started, until, rec.back)),
                "detail": rec.detail or rec.error,
                "started": rec.started,
                "back": rec.back,
                "window_end": rec.window_end,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]] = COLUMNS) -> None:
    """A markdown row per fault (bench/chaos_cluster_table.py's columns are its own), then
    what each fault did."""
    print("| " + " | ".join(title for _, title in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        row["fivexx"] = f"{row['errors_5xx']:,} ({row['errors_5xx_after_back']:,})"
        cells = [f"{row[k]:,}" if isinstance(row[k], int) else str(row[k]) for k, _ in columns]
        print("| " + " | ".join(cells) + " |")
    for i, row in enumerate(rows, 1):
        print(f"  {i}. {row['fault']}: {row['detail']}")


def order_line(label: str, o: cr.Order, tolerance: float, moment: str = "restart") -> str:
    return (
        f"{label}: {o.cohort:,} fans waiting at the {moment}, {o.admitted_after:,} admitted "
        f"after it; {o.regained:,} in line with their own place, {o.moved:,} with another; "
        f"{o.pairs:,} pairs (ahead, behind) checked, {o.inversions:,} admitted out of order "
        f"by more than {tolerance:.1f} s (worst {o.worst_seconds:.1f} s), {o.excused:,} "
        f"excused (the fan ahead not back in line yet); {o.newcomers:,} fans with new places "
        f"after the {moment} checked with them"
    )


def print_results(
    args: argparse.Namespace,
    keys: list[str],
    schedule: Schedule,
    procs: ChaosProcs,
    servers: PrivateServers,
    sale: dict[str, Any],
    figures: report.RunFigures,
    sales: list[tuple[float, int]],
    attempts: list[cr.Attempt],
) -> dict[str, Any]:
    fans = sale["loads"]["fans"]
    end = max((a.at for a in attempts), default=time.time())
    rows = fault_rows(schedule, attempts, sales, end)
    print()
    print(
        f"chaos on-sale: {args.fans:,} fans, {args.seats:,} seats, admitting "
        f"{args.admit_per_minute:,}/min, windows of {args.window:.0f} s; tree {tree()}"
    )
    print(
        "private servers started in "
        + ", ".join(f"{k} {v:.1f} s" for k, v in servers.start_seconds.items())
    )
    print(
        "recovered in s (from the component back to the first success after the last "
        "failure): join, queue (status and sockets), reserve, confirm, search, view; sale rate "
        f"back: 5 s of sales at 75% of the sale's median pace ({cr.typical_rate(sales):.1f} "
        "seats/s) or more; counts from the fault's start to the end of its window"
    )
    print_table(rows)
    restarts = [r for r in schedule.records if r.key in REDIS_FAULTS and r.back]
    moments = [(r.label, r.started, r.key == "redis_lost") for r in restarts]
    orders = order_checks(fans, moments, args)
    lost = any(r.key == "redis_lost" and r.back for r in schedule.records)
    ledger = [line for line in figures.ledger if not (lost and COUNTER_LINE in line)]
    for line in figures.ledger:
        print(("n/a after a Redis data loss: " if line not in ledger else "ledger: ") + line)
    for line in figures.double_sold:
        print(f"ledger: {line}")
    outcomes = print_sale(sale, figures, procs)
    redis_403 = sum(r["reserve_403"] for r in rows if r["key"] in REDIS_FAULTS)
    checks = [
        (
            len(schedule.records) == len(keys) and all(r.back for r in schedule.records),
            f"every fault ran and its component came back ({len(schedule.records)} of {len(keys)})",
        ),
        (
            not [r for r in rows for c in cr.ROUTES if r[c] == "never"],
            "every route answered again after every fault",
        ),
        (not procs.unasked, f"no component exited unasked ({len(procs.unasked)})"),
        *ledger_checks(figures, ledger, fans),
        *[(o.holds, f"fans kept their places in order across {k}") for k, o in orders.items()],
        (
            redis_403 == 0,
            f"admitted fans kept their admission across the Redis restarts ({redis_403:,} "
            "reserves refused 403)",
        ),
    ]
    print_checks(checks)
    return summary(rows, orders, checks, outcomes, figures, procs)


def order_checks(
    fans: list[dict[str, Any]],
    moments: list[tuple[str, float, bool]],
    args: argparse.Namespace,
    word: str = "restart",
) -> dict[str, cr.Order]:
    """The order check of the fans waiting at each moment (label, time, whether the queue
    was lost then), each up to the next moment; printed, and returned by label."""
    orders = {}
    for (label, at, lost), following in zip(moments, [*moments[1:], None], strict=True):
        until = following[1] if following else float("inf")
        members = cr.cohort(fans, at, lost, args.session_seconds, until)
        later = cr.newcomers(fans, at, members, args.session_seconds, until)
        orders[label] = cr.order_check(members, args.order_tolerance, later, until)
        print("order across " + order_line(label, orders[label], args.order_tolerance, word))
    return orders


def print_sale(sale: dict[str, Any], figures: report.RunFigures, procs: ChaosProcs) -> Counter[str]:
    """The fans' outcomes (returned), every route's statuses, the sale, the exits."""
    fans = sale["loads"]["fans"]
    outcomes = Counter(f["outcome"] or f"out:{f['last_status']}" for f in fans)
    print("fans: " + ", ".join(f"{k} {v:,}" for k, v in outcomes.most_common()))
    statuses = {route: dict(sorted(c.items())) for route, c in sale["loads"]["statuses"].items()}
    print(f"statuses: {json.dumps(statuses, sort_keys=True)}")
    print(
        f"sale: {figures.selling.seats:,} seats sold at {figures.selling.rate:.1f}/s, "
        f"sold out {sold_out(figures.sold_out_after)} after on-sale; 5xx answers to fans "
        f"{figures.errors_5xx:,}; run ended: {sale['ended']}"
    )
    for line in procs.unasked:
        print(f"exited unasked: {line}")
    return outcomes


def ledger_checks(
    figures: report.RunFigures, ledger: list[str], fans: list[dict[str, Any]]
) -> list[tuple[bool, str]]:
    """The on-sale's own checks; ``ledger``: the ledger's problems that count."""
    stuck = cr.unfinished(fans)
    return [
        (not figures.double_sold, "no seat sold twice"),
        (
            not figures.unpaid_charges,
            f"every charge a booking's or refunded ({len(figures.unpaid_charges)} not)",
        ),
        (not ledger, "the API, the queue and the database agree (bookings, waiting, active)"),
        (not stuck, "every fan ended with an answer" + (f" ({stuck})" if stuck else "")),
    ]


def print_checks(checks: list[tuple[bool, str]]) -> None:
    for passed, line in checks:
        print(("PASS  " if passed else "FAIL  ") + line)
    failed = sum(not passed for passed, _ in checks)
    print("PASS" if not failed else f"FAIL: {failed} of {len(checks)} checks")


def summary(
    rows: list[dict[str, Any]],
    orders: dict[str, cr.Order],
    checks: list[tuple[bool, str]],
    outcomes: Counter[str],
    figures: report.RunFigures,
    procs: ChaosProcs,
) -> dict[str, Any]:
    """What --summary and the results files keep."""
    return {
        "rows": rows,
        "orders": {k: asdict(o) for k, o in orders.items()},
        "checks": checks,
        "fans": dict(outcomes),
        "sold": figures.selling.seats,
        "errors_5xx": figures.errors_5xx,
        "unasked": procs.unasked,
    }


def sold_out(after: float | None) -> str:
    return "n/a" if after is None else f"{after:.1f} s"


def tree() -> str:
    from bench.onsale import tree_state

    return tree_state()

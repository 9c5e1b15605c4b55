"""The on-sale benchmark's arithmetic: figures from the fans' records and the ledger's checks
from PostgreSQL and localstripe, the per-second time series (CSV and PNG) and the targets.

Everything here is a pure function of what bench/onsale.py collected (no I/O but the CSV
and chart writers), so tests/unit/platform/test_onsale_report.py can try it on crafted inputs.

A fan's record (bench/onsale_load.py writes one per fan) is a dict with, among others:
``kind`` (buy, decline_first, abandon, leave), ``joined_at`` (wall clock of the join's
answer), ``join_status``, ``eta`` (eta_seconds at join, or None), ``admitted_at`` and
``sold_out_at`` (wall clock when the fan heard it, or None) and ``outcome`` (booked, held,
sold_out, left, abandoned, failed:<why>, or None when the run stopped first).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.reserve_load import percentile

# Terminal outcomes: a fan with any of these is not waiting any more.
FINISHED = ("booked", "held", "sold_out", "left", "abandoned")


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float


def latency(values_ms: Iterable[float]) -> Latency:
    ordered = sorted(values_ms)
    return Latency(len(ordered), percentile(ordered, 50), percentile(ordered, 99))


def waits(fans: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from each admitted fan's join answer to their hearing of the admission."""
    return [
        f["admitted_at"] - f["joined_at"]
        for f in fans
        if f.get("admitted_at") is not None and f.get("joined_at") is not None
    ]


def admission_to_hold(fans: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from each buyer's hearing of their (last) admission to their 201 reserve:
    what a fan lives between "it is your turn" and seats in the cart, however the time
    was spent (the reserve, its retries, a 409 and a smaller ask)."""
    return [
        f["held_at"] - f["last_admitted_at"]
        for f in fans
        if f.get("held_at") is not None and f.get("last_admitted_at") is not None
    ]


def still_in_line(fans: Iterable[Mapping[str, Any]]) -> int:
    return sum(in_line(f) for f in fans)


def in_line(f: Mapping[str, Any]) -> bool:
    """Whether the fan holds a place in the line at the end by their own account: joined,
    not admitted since their last join, never left (told sold_out, or still waiting when
    the run stopped). A fan whose admission ended unused joined again: in line once more."""
    joined = f.get("last_joined_at", f.get("joined_at"))
    admitted = f.get("last_admitted_at", f.get("admitted_at"))
    if joined is None or f.get("outcome") not in ("sold_out", None):
        return False
    return admitted is None or joined > admitted


# Clocks: the fans hear an admission a little after the admitter made it, and a sale's
# commit follows its created_at; admissions this close to the claim window's end may count
# either way.
CLAIM_EDGE_SECONDS = 2.0


def waiting_at_end(
    fans: Iterable[Mapping[str, Any]], sold_out_at: float | None, claim_seconds: float
) -> tuple[int, int]:
    """The least and most the queue's ``waiting`` may say at the end: the fans still in line
    (still_in_line), plus those a sell-out at ``sold_out_at`` put back at the front of the
    line: admitted fans who never reserved (abandoned) and whose claim window was still
    open then. None: no sell-out, nobody put back."""
    fans = list(fans)
    base = still_in_line(fans)
    if sold_out_at is None:
        return base, base

    def back(window: float) -> int:
        count = 0
        for f in fans:
            admitted = f.get("last_admitted_at", f.get("admitted_at"))
            if f.get("outcome") == "abandoned" and admitted is not None:
                count += admitted > sold_out_at - window
        return count

    return (
        base + back(claim_seconds - CLAIM_EDGE_SECONDS),
        base + back(claim_seconds + CLAIM_EDGE_SECONDS),
    )


def over_admission(admitted: int, purchases: int) -> float | None:
    """Fans admitted per purchase made (a purchase is one fan's hold or booking): 1.0 when
    everyone let in could buy; None when nobody bought."""
    return admitted / purchases if purchases else None


def eta_pairs(fans: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(estimate, actual wait) in seconds for each admitted fan who was given an estimate:
    eta_seconds at join, or for the pre-queue (whose join has none: its place is drawn at
    on-sale) the first estimate heard after the draw, the wait then counted from when it
    was heard (``eta_at``)."""
    pairs = []
    for f in fans:
        eta, since, admitted = f.get("eta"), f.get("eta_at"), f.get("admitted_at")
        if eta is None or since is None or admitted is None or admitted <= since:
            continue
        pairs.append((float(eta), admitted - since))
    return pairs


def eta_errors(fans: Iterable[Mapping[str, Any]]) -> list[float]:
    """|estimate - actual wait| / actual wait (see eta_pairs)."""
    return [abs(eta - actual) / actual for eta, actual in eta_pairs(fans)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def notice_lags(fans: Iterable[Mapping[str, Any]], last_sale_at: float | None) -> list[float]:
    """Seconds from the last seat's sale to each sold_out notice of a fan who was still in
    line then (joined before it and not finished): fans who join later hear sold_out in
    their join's answer, which is no lag at all and would only dilute the figure."""
    if last_sale_at is None:
        return []
    return [
        f["sold_out_at"] - last_sale_at
        for f in fans
        if f.get("sold_out_at") is not None
        and f.get("joined_at") is not None
        and f["joined_at"] <= last_sale_at
    ]


@dataclass(frozen=True, slots=True)
class Selling:
    seats: int
    first_at: float | None
    last_at: float | None

    @property
    def seconds(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at

    @property
    def rate(self) -> float:
        return self.seats / self.seconds if self.seconds > 0 else 0.0


def selling(sales: Iterable[tuple[float, int]]) -> Selling:
    """Seats per second over the selling window, first sale to last, from (time, seats)
    of every sale (a booking, or a hold in the reserve-only run)."""
    sales = list(sales)
    if not sales:
        return Selling(0, None, None)
    times = [t for t, _ in sales]
    return Selling(sum(n for _, n in sales), min(times), max(times))


def time_to_share(
    sales: Iterable[tuple[float, int]], start: float, seats: int, share: float
) -> float | None:
    """Seconds from ``start`` until the sales add up to ``share`` of ``seats`` (None when
    they never do): the body of the sale, without the tail of its last few seats."""
    total = 0
    for at, n in sorted(sales):
        total += n
        if total >= share * seats:
            return at - start
    return None


def double_sales(
    bookings: Mapping[str, list[int]], tickets: Mapping[int, tuple[str, str | None]]
) -> list[str]:
    """Every way a seat was sold more than once, or a booking's seats disagree with the
    tickets table: ``bookings`` maps each confirmed booking to its seats (its hold's ticket
    ids), ``tickets`` each ticket of the event to (status, booking id)."""
    problems = []
    owner: dict[int, str] = {}
    twice = set()
    for booking, ids in bookings.items():
        for ticket in ids:
            if ticket in owner and owner[ticket] != booking:
                twice.add(ticket)
            owner[ticket] = booking
    if twice:
        problems.append(f"{len(twice)} seat(s) in two bookings")
    wrong = [t for t, b in owner.items() if tickets.get(t) != ("booked", b) and t not in twice]
    if wrong:
        problems.append(f"{len(wrong)} booked seat(s) not marked booked by their own booking")
    stray = [t for t, (status, b) in tickets.items() if status == "booked" and t not in owner]
    if stray:
        problems.append(f"{len(stray)} seat(s) booked outside any confirmed booking")
    return problems


def fans_answered_twice(fans: Iterable[Mapping[str, Any]]) -> list[str]:
    """Seats the fans were told were theirs (201 bookings, or holds in the reserve-only run)
    by more than one answer."""
    seen: dict[int, str] = {}
    twice = 0
    for f in fans:
        for ticket in f.get("ticket_ids") or []:
            if ticket in seen and seen[ticket] != f["user"]:
                twice += 1
            seen[ticket] = f["user"]
    return [f"{twice} seat(s) told to two fans as theirs"] if twice else []


def unmatched_charges(
    intents: Iterable[Mapping[str, Any]], booked: set[str], refunded: set[str], holds: set[str]
) -> list[str]:
    """The succeeded PaymentIntents of this run's holds that are neither a booking's payment
    nor refunded (a charge with nothing to show for it)."""
    return [
        pi["id"]
        for pi in intents
        if pi.get("status") == "succeeded"
        and (pi.get("metadata") or {}).get("hold_id") in holds
        and pi["id"] not in booked
        and pi["id"] not in refunded
    ]


def refunded_intents(intents: list[dict[str, Any]], refunds: list[dict[str, Any]]) -> set[str]:
    """The PaymentIntents a refund names, directly or through their charge."""
    by_charge = {}
    for pi in intents:
        charge = pi.get("latest_charge")
        if isinstance(charge, dict):
            charge = charge.get("id")
        if charge:
            by_charge[charge] = pi["id"]
    found = set()
    for refund in refunds:
        if refund.get("payment_intent"):
            found.add(refund["payment_intent"])
        elif refund.get("charge") in by_charge:
            found.add(by_charge[refund["charge"]])
    return found


def series(
    samples: list[tuple[float, Mapping[str, Any]]],
    fans: Iterable[Mapping[str, Any]],
    answers_409: Iterable[float],
    on_sale_at: float,
) -> list[dict[str, Any]]:
    """One row per second from on-sale (negative before it): the sampled figures (the last
    sample of each second) and the client-side counts of 409s and sold_out notices."""
    rows: dict[int, dict[str, Any]] = {}
    for at, sample in samples:
        second = int((at - on_sale_at) // 1)
        rows.setdefault(second, {"second": second}).update(sample)
    for at in answers_409:
        second = int((at - on_sale_at) // 1)
        row = rows.setdefault(second, {"second": second})
        row["http_409"] = row.get("http_409", 0) + 1
    for f in fans:
        if f.get("sold_out_at") is not None:
            second = int((f["sold_out_at"] - on_sale_at) // 1)
            row = rows.setdefault(second, {"second": second})
            row["sold_out_notices"] = row.get("sold_out_notices", 0) + 1
    ordered = [rows[s] for s in sorted(rows)]
    last: dict[str, Any] = {}
    for row in ordered:  # a missed sample repeats the previous one; counts start at 0
        for column in SAMPLED:
            if column in row:
                last[column] = row[column]
            else:
                row[column] = last.get(column, "")
        row.setdefault("http_409", 0)
        row.setdefault("sold_out_notices", 0)
    return ordered


SAMPLED = ("pre_queue", "waiting", "active", "admitted_total", "holds", "bookings", "seats_sold")
COLUMNS = ("run", "second", *SAMPLED, "http_409", "sold_out_notices")


def write_csv(path: Path, runs: Mapping[str, list[dict[str, Any]]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for run, rows in runs.items():
            for row in rows:
                writer.writerow({"run": run, **row})


def draw(path: Path, runs: Mapping[str, list[dict[str, Any]]], title: str) -> None:
    """One panel per run: the queue (waiting, active), cumulative admissions and sales, and
    the per-second 409s and sold_out notices, against seconds from on-sale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 3.6 * len(runs)), squeeze=False)
    for ax, (run, rows) in zip(axes[:, 0], runs.items(), strict=True):
        xs = [r["second"] for r in rows]

        def col(name: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [float(r[name]) if r.get(name) not in ("", None) else float("nan") for r in rows]

        for name, style in (
            ("pre_queue", "-."),
            ("waiting", "-"),
            ("active", "-"),
            ("admitted_total", "--"),
            ("holds", "-"),
            ("bookings", "-"),
            ("seats_sold", ":"),
        ):
            ax.plot(xs, col(name), style, label=name, linewidth=1.2)
        ax.set_ylabel("fans / holds / seats")
        ax.set_xlabel("seconds from on-sale")
        ax.axvline(0, color="grey", linewidth=0.8)
        right = ax.twinx()
        right.bar(xs, col("http_409"), width=0.9, alpha=0.35, color="tab:red", label="409s /s")
        right.bar(
            xs,
            col("sold_out_notices"),
            width=0.9,
            alpha=0.35,
            color="tab:purple",
            label="sold_out notices /s",
        )
        right.set_ylabel("per second")
        lines, labels = ax.get_legend_handles_labels()
        more, more_labels = right.get_legend_handles_labels()
        ax.legend(lines + more, labels + more_labels, loc="upper left", fontsize=7, ncol=2)
        ax.set_title(f"{title}: {run}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


@dataclass(slots=True)
class RunFigures:
    """What one on-sale run measured (bench/onsale.py fills it)."""

    name: str
    selling: Selling
    sold_out_after: float | None  # on-sale to the last sale, s; None when not sold out
    sold_90_after: float | None  # on-sale to 90% of the seats sold, s
    join: Latency
    wait: Latency  # in ms like the others
    reserve: Latency
    confirm: Latency | None
    admitted: int  # the queue's admitted_total
    heard_admitted: int  # fans who heard they were admitted
    purchases: int
    notice_lag_p99: float | None  # s
    notice_lags: int
    eta_error: float | None
    eta_samples: int
    eta_gap: float | None  # median |estimate - actual wait|, s
    errors_5xx: int
    double_sold: list[str] = field(default_factory=list)  # double_sales + fans_answered_twice
    unpaid_charges: list[str] = field(default_factory=list)  # unmatched_charges' ids
    ledger: list[str] = field(default_factory=list)  # the ledger's other problems
    to_hold: Latency | None = None  # admission heard to seats held, ms

    @property
    def over_admission(self) -> float | None:
        return over_admission(self.admitted, self.purchases)


TARGET_RATE_SHARE = 0.5
TARGET_RESERVE_P99_MS = 500
TARGET_OVER_ADMISSION = 1.10
TARGET_NOTICE_LAG_S = 1.0
TARGET_ETA_ERROR = 0.15


def targets(pay: RunFigures, baseline: RunFigures, latency_ms: int) -> list[tuple[bool, str]]:
    """The issue's targets, each (met, what it says with the measured value)."""
    share = pay.selling.rate / baseline.selling.rate if baseline.selling.rate else 0.0
    confirm_p99 = pay.confirm.p99_ms if pay.confirm else float("inf")
    over = pay.over_admission
    lag = pay.notice_lag_p99
    eta = pay.eta_error
    double = pay.double_sold + baseline.double_sold
    unpaid = pay.unpaid_charges
    ledger = pay.ledger + [f"reserve-only: {p}" for p in baseline.ledger]
    return [
        (
            share >= TARGET_RATE_SHARE,
            f"sold/s >= {TARGET_RATE_SHARE} x reserve-only: {pay.selling.rate:.1f} vs "
            f"{baseline.selling.rate:.1f} ({share:.2f} x)",
        ),
        (
            pay.reserve.count > 0 and pay.reserve.p99_ms < TARGET_RESERVE_P99_MS,
            f"reserve p99 < {TARGET_RESERVE_P99_MS} ms: {pay.reserve.p99_ms:.0f} ms",
        ),
        (
            confirm_p99 < 1000 + latency_ms,
            f"confirm p99 < {1000 + latency_ms} ms: {confirm_p99:.0f} ms",
        ),
        (
            pay.errors_5xx == 0 and baseline.errors_5xx == 0,
            f"zero 5xx: {pay.errors_5xx} (+ {baseline.errors_5xx} reserve-only)",
        ),
        (not double, "zero double sales" + (f": {'; '.join(double)}" if double else "")),
        (
            not unpaid,
            "zero charges without booking or refund"
            + (f": {len(unpaid)}, e.g. {', '.join(unpaid[:3])}" if unpaid else ""),
        ),
        (
            over is not None and over <= TARGET_OVER_ADMISSION,
            f"over-admission <= {TARGET_OVER_ADMISSION:.2f}: "
            + (f"{over:.2f}" if over is not None else "n/a (no purchase)"),
        ),
        (
            lag is not None and lag < TARGET_NOTICE_LAG_S,
            f"sold-out notice lag p99 < {TARGET_NOTICE_LAG_S:.0f} s: "
            + (
                f"{lag:.2f} s over {pay.notice_lags:,} fans"
                if lag is not None
                else "n/a (no notice)"
            ),
        ),
        (
            eta is not None and eta <= TARGET_ETA_ERROR,
            f"median ETA error <= {TARGET_ETA_ERROR:.0%}: "
            + (
                f"{eta:.0%} over {pay.eta_samples:,} fans"
                if eta is not None
                else "n/a (no estimate)"
            ),
        ),
        (
            not ledger,
            "ledger: API counts agree, nobody left waiting"
            + (f": {'; '.join(ledger)}" if ledger else ""),
        ),
    ]

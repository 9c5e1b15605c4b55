"""The chaos run's arithmetic, on plain values (tested in tests/chaos/test_chaos_report.py):
per fault, how long each route took to recover, the 5xx and unanswered requests while it
lasted, how long until the sale rate was back; and the order check across a Redis restart.

Columns: ``join`` (the fans' joins and the probes'), ``queue`` (status polls and websocket
handshakes, the fans' and the probes': the waiting room's own processes), ``reserve``,
``confirm``, ``search`` and ``view`` (the probes').

A request *failed* when it got no answer (status 0: refused, reset, timed out) or a 5xx;
a search also while it was answered from the PostgreSQL fallback (``degraded``), and a
reserve when refused ``403`` (its admission lost). A route's *recovery* after a fault is
the first success after the last failure seen between the fault's start and the end of its
window, counted from the moment the component was back (0 when it recovered before the
component answered its own health check); ``ok`` when nothing failed, ``never`` when no
success followed, ``-`` when nothing was asked (say, no reserve after the sell-out).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROUTES = ("join", "queue", "reserve", "confirm", "search", "view")
# the timelines' route names per column: fans' joins and the probes' joins count alike
ROUTE_SOURCES = {
    "join": ("join", "probe_join"),
    "queue": ("status", "ws", "probe_status"),
    "reserve": ("reserve",),
    "confirm": ("confirm",),
    "search": ("search",),
    "view": ("view",),
}


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float  # wall clock of the answer (or of giving up)
    route: str
    status: int
    note: str = ""
    sent: float | None = None  # wall clock of the request, when known


def failed(a: Attempt) -> bool:
    if a.status == 0 or a.status >= 500:
        return True
    if a.route == "search" and a.note == "degraded":
        return True
    return a.route == "reserve" and a.status == 403


def recovery(attempts: Sequence[Attempt], start: float, back: float, end: float) -> str:
    """``attempts`` of one column, sorted by time."""
    inside = [a for a in attempts if start <= a.at <= end]
    failures = [a.at for a in inside if failed(a)]
    if not failures:
        return "ok" if inside else "-"
    last = max(failures)
    after = next((a.at for a in attempts if a.at > last and not failed(a)), None)
    if after is None:
        return "never"
    return f"{max(0.0, after - back):.1f}"


def by_column(attempts: Iterable[Attempt]) -> dict[str, list[Attempt]]:
    columns: dict[str, list[Attempt]] = {c: [] for c in ROUTES}
    for a in attempts:
        for column, sources in ROUTE_SOURCES.items():
            if a.route in sources:
                columns[column].append(a)
    for values in columns.values():
        values.sort(key=lambda a: a.at)
    return columns


@dataclass(frozen=True, slots=True)
class Window:
    errors_5xx: int
    unanswered: int
    reserve_403: int
    degraded_searches: int
    errors_5xx_after_back: int = 0  # of errors_5xx: answered after the component was back


def window_counts(
    attempts: Iterable[Attempt], start: float, end: float, back: float | None = None
) -> Window:
    inside = [a for a in attempts if start <= a.at <= end]
    back = end if back is None else back
    return Window(
        errors_5xx_after_back=sum(a.status >= 500 and a.at > back for a in inside),
        errors_5xx=sum(a.status >= 500 for a in inside),
        unanswered=sum(a.status == 0 for a in inside),
        reserve_403=sum(a.route == "reserve" and a.status == 403 for a in inside),
        degraded_searches=sum(a.route == "search" and a.note == "degraded" for a in inside),
    )


def seats_between(sales: Sequence[tuple[float, int]], begin: float, end: float) -> int:
    """Seats sold in [begin, end); ``sales`` sorted by time."""
    lo = bisect.bisect_left(sales, (begin, -1))
    hi = bisect.bisect_left(sales, (end, -1))
    return sum(n for _, n in sales[lo:hi])


def typical_rate(sales: Sequence[tuple[float, int]], span: float = 5.0) -> float:
    """The median seats per second over ``span``-second windows, a second apart, from the
    first sale to the last: the sale's usual pace, faults and all."""
    if not sales:
        return 0.0
    rates = []
    t = sales[0][0]
    while t + span <= sales[-1][0] + 1e-9:
        rates.append(seats_between(sales, t, t + span) / span)
        t += 1.0
    return median(rates) if rates else 0.0


def sale_rate_back(
    sales: Sequence[tuple[float, int]],
    back: float,
    until: float,
    typical: float,
    *,
    span: float = 5.0,
    share: float = 0.75,
) -> str:
    """Seconds from ``back`` until the seats sold over the next ``span`` seconds reach
    ``share`` of the ``typical`` rate (typical_rate), looked for until ``until`` (the end
    of the fault's window); ``>N`` when not by then, ``-`` when the sale was over."""
    if typical <= 0 or not sales or back >= sales[-1][0]:
        return "-"
    t = back
    while t <= until:
        if seats_between(sales, t, t + span) / span >= share * typical:
            return f"{t - back:.1f}"
        t += 0.5
    return f">{until - back:.0f}"


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    place: int
    admitted: float | None  # first admission after the restart (server time when known)
    back_in_line: float | None  # from when the fan stood in line again
    moved: bool  # came back with another place than its ticket's


@dataclass(frozen=True, slots=True)
class Order:
    cohort: int  # waiting at the restart
    admitted_after: int
    regained: int  # came back with their own place (a lost queue) or kept it
    moved: int  # came back with another place
    pairs: int  # (ahead, behind) pairs with the one behind admitted after the restart
    inversions: int
    excused: int  # the one ahead was not back in line yet when the other was admitted
    worst_seconds: float  # the longest an inversion's fan ahead waited after the one behind
    newcomers: int = 0  # fans with new places after the restart, checked with the cohort

    @property
    def holds(self) -> bool:
        return self.moved == 0 and self.inversions == 0


def admission_time(
    fan: Mapping[str, Any], index: int, session_seconds: float, heard: float
) -> float:
    """When the server admitted the fan (its ``index``-th admission, heard at ``heard``):
    the admission token's ``exp`` is the session's end in whole seconds, the admission
    plus ``session_seconds`` (so within half a second of exp - session_seconds + 0.5); an
    admitted queue ticket heard with it names the end in ms. A fan hears its admission
    later than it was made when its socket was not open at that moment (it hears it from
    its next status), so the fan's own time is the last resort."""
    for at, where, place, _epoch in fan.get("tickets") or []:
        if where == "admitted" and isinstance(place, int) and abs(at - heard) < 0.05:
            return min(heard, place / 1000 - session_seconds)
    exps = fan.get("admission_exps") or []
    exp = exps[index] if index < len(exps) else None
    if isinstance(exp, int | float):
        return min(heard, exp - session_seconds + 0.5)
    return heard


def cohort(
    fans: Iterable[Mapping[str, Any]],
    at: float,
    lost: bool,
    session_seconds: float,
    until: float = float("inf"),
) -> list[Member]:
    """The fans waiting in line (a ``waiting`` queue ticket, not admitted since) when Redis
    restarted at ``at``; fans who leave the line on purpose are left out. What happened
    from ``until`` on (the next Redis restart) is not this restart's: an admission then
    counts as none."""
    members = []
    for f in fans:
        if f.get("kind") == "leave":
            continue
        log = f.get("tickets") or []
        before = [e for e in log if e[0] < at and e[1] == "waiting"]
        if not before:
            continue
        since, _where, place, _epoch = before[-1]
        admissions = f.get("admissions") or []
        if any(since <= a < at for a in admissions):
            continue
        first = next(((i, a) for i, a in enumerate(admissions) if at <= a < until), None)
        later = [e for e in log if at <= e[0] < until and e[1] == "waiting"]
        same = next((e[0] for e in later if e[2] == place), None) if lost else at
        moved = any(e[2] != place for e in later)
        members.append(
            Member(
                user=f["user"],
                place=place,
                admitted=None
                if first is None
                else admission_time(f, first[0], session_seconds, first[1]),
                back_in_line=same,
                moved=moved,
            )
        )
    return members


def newcomers(
    fans: Iterable[Mapping[str, Any]],
    at: float,
    members: Sequence[Member],
    session_seconds: float,
    until: float = float("inf"),
) -> list[Member]:
    """Fans who took a new place after the restart at ``at`` (arrivals, fans back after
    their admission ended, fans of the cohort who came back with another place), as
    members in line from the moment they got it. Places are comparable across a lost
    queue (a new one is the time of the join in microseconds, a restored one keeps its
    own), so they take part in the order check like the cohort."""
    ours = {m.user: m for m in members}
    found = []
    for f in fans:
        member = ours.get(f["user"])
        if (member is not None and not member.moved) or f.get("kind") == "leave":
            continue
        own = member.place if member is not None else None
        for e in f.get("tickets") or []:
            if at <= e[0] < until and e[1] == "waiting" and e[2] != own:
                admissions = enumerate(f.get("admissions") or [])
                first = next(((i, x) for i, x in admissions if e[0] <= x < until), None)
                admitted = (
                    None
                    if first is None
                    else admission_time(f, first[0], session_seconds, first[1])
                )
                found.append(Member(f["user"], e[2], admitted, e[0], False))
                break
    return found


def order_check(
    members: Sequence[Member],
    tolerance: float = 1.0,
    later: Sequence[Member] = (),
    until: float = float("inf"),
) -> Order:
    """Fans ahead (smaller place) are admitted no later than fans behind them, within
    ``tolerance`` seconds; a pair whose fan ahead was not back in line (by ``tolerance``)
    when the other was admitted is excused (it could not have been first: a fan's times
    are its own, when it heard the answer); a fan ahead never admitted while
    one behind was counts as an inversion, unless the one behind was admitted within
    ``tolerance`` of ``until`` (the next moment, from which admissions are not this
    cohort's: the fan ahead may have been admitted just after it). ``later``
    (newcomers()) take part in the pairs; the cohort's own figures are those of
    ``members``."""
    ranked = sorted([*members, *later], key=lambda m: m.place)
    pairs = inversions = excused = 0
    worst = 0.0
    for i, behind in enumerate(ranked):
        if behind.admitted is None:
            continue
        for ahead in ranked[:i]:
            if ahead.place == behind.place:
                continue
            pairs += 1
            admitted = float("inf") if ahead.admitted is None else ahead.admitted
            if admitted <= behind.admitted + tolerance:
                continue
            if ahead.back_in_line is None or ahead.back_in_line > behind.admitted - tolerance:
                excused += 1
                continue
            if ahead.admitted is None and behind.admitted > until - tolerance:
                excused += 1
                continue
            inversions += 1
            if ahead.admitted is not None:
                worst = max(worst, ahead.admitted - behind.admitted)
    return Order(
        cohort=len(members),
        admitted_after=sum(m.admitted is not None for m in members),
        regained=sum(m.back_in_line is not None and not m.moved for m in members),
        moved=sum(m.moved for m in members),
        pairs=pairs,
        inversions=inversions,
        excused=excused,
        worst_seconds=worst,
        newcomers=len(later),
    )


def unfinished(fans: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Fans without an answer at the end, or with a failure, by what they last heard."""
    counts: dict[str, int] = {}
    for f in fans:
        outcome = f.get("outcome")
        if outcome is None or str(outcome).startswith("failed"):
            key = str(outcome or f"unfinished:{f.get('last_status')}")
            counts[key] = counts.get(key, 0) + 1
    return counts

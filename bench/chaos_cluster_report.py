"""bench/chaos_cluster.py's arithmetic on plain values (tested in
tests/chaos/test_chaos_cluster_report.py): when each of the fans' requests was sent, how
long after a node's loss a route served again, and how long its slowest request waited.

A node's *absence* runs from its kill to the moment it is started again. Its requests are
those answered after the kill and sent before that moment. A route has *resumed* at the
answer of the first success sent after the kill and after the last failed request of the
absence was sent (failures as bench/chaos_report.py counts them: no answer, a 5xx, a
degraded search, a reserve refused 403): a request in flight at the kill that succeeds
proves nothing, and one that hangs until the cluster has taken over counts when it ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench import chaos_report as cr
from bench import onsale_report as report


def with_sent(
    timeline: Sequence[Sequence[Any]], latencies_ms: Mapping[str, Sequence[float]]
) -> list[cr.Attempt]:
    """The fans' answers (bench/onsale_load.py's timeline: time, route, status) with the
    time each request was sent. The load generator notes a request's latency and its
    timeline entry in the same call, and bench/onsale.py's merge() keeps each process's
    order in both, so a route's k-th answer in the timeline took its k-th latency."""
    answers = [(float(at), str(route), int(status)) for at, route, status in timeline]
    counts = Counter(route for _, route, _ in answers)
    lengths = {route: len(values) for route, values in latencies_ms.items() if values}
    if counts != lengths:
        raise ValueError(f"the timeline ({dict(counts)}) and latencies ({lengths}) differ")
    taken = {route: iter(values) for route, values in latencies_ms.items()}
    return [
        cr.Attempt(at, route, status, sent=at - next(taken[route]) / 1000)
        for at, route, status in answers
    ]


def sent(a: cr.Attempt) -> float:
    return a.at if a.sent is None else a.sent


@dataclass(frozen=True, slots=True)
class Resume:
    asked: int  # requests of the absence
    failures: int
    seconds: float | None  # from the kill to the route resumed; None: it never did
    longest: float  # the longest a request of the absence waited for its answer, s

    def cell(self) -> str:
        if not self.asked:
            return "-"
        return "never" if self.seconds is None else f"{self.seconds:.1f}"


def resume(attempts: Sequence[cr.Attempt], killed: float, restarted: float) -> Resume:
    """One column's requests (any order), a node killed at ``killed`` and started again at
    ``restarted``."""
    inside = [a for a in attempts if a.at >= killed and sent(a) <= restarted]
    if not inside:
        return Resume(0, 0, None, 0.0)
    failures = [a for a in inside if cr.failed(a)]
    after = max([killed, *(sent(a) for a in failures)])
    first = min(
        (a.at for a in attempts if sent(a) > after and not cr.failed(a)),
        default=None,
    )
    return Resume(
        asked=len(inside),
        failures=len(failures),
        seconds=None if first is None else first - killed,
        longest=max(a.at - sent(a) for a in inside),
    )


def interrupted(attempts: Sequence[cr.Attempt], begin: float, end: float) -> int:
    """Failed answers (unanswered, 5xx, degraded) between ``begin`` and ``end``."""
    return sum(begin <= a.at <= end and cr.failed(a) for a in attempts)


def line_differences(members: set[str], fans: Sequence[Mapping[str, Any]]) -> list[str]:
    """Where the queue's line at the end (``members``) and the fans who hold a place by
    their own account (bench/onsale_report.py's in_line) differ, a line per fan with what
    its record says. Admitted fans who abandoned may be in the line without saying so: a
    sell-out puts those whose claim window is open back at the front, by design
    (onsale_report.waiting_at_end)."""
    own = {f["user"]: f for f in fans if report.in_line(f)}
    by_user = {f["user"]: f for f in fans}
    lines = []
    for user in sorted(members - set(own)):
        f = by_user.get(user)
        if f is not None and f.get("outcome") == "abandoned":
            continue
        said = "not one of the fans" if f is None else story(f)
        lines.append(f"{user} is in it, the fan says it is not: {said}")
    for user in sorted(set(own) - members):
        lines.append(f"{user} is not in it, the fan says it is: {story(own[user])}")
    return lines


def story(f: Mapping[str, Any]) -> str:
    times = ("joined_at", "last_joined_at", "admitted_at", "last_admitted_at", "sold_out_at")
    known = ", ".join(f"{k} {f[k]:.3f}" for k in times if f.get(k) is not None)
    return f"{f.get('kind')}, {f.get('outcome') or 'unfinished'}; {known}"

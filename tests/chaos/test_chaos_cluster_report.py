"""bench/chaos_cluster.py's arithmetic on crafted inputs: the fans' requests given the time
each was sent, and how long after a node's kill a route served again. No servers: these
run in a second."""

from __future__ import annotations

import pytest

from bench import chaos_cluster_report as ccr
from bench import chaos_report as cr


def a(sent: float, at: float, route: str, status: int, note: str = "") -> cr.Attempt:
    return cr.Attempt(at, route, status, note, sent)


def test_each_answer_gets_the_time_its_request_was_sent() -> None:
    # two load processes merged: each one's reserves in its own order, in both lists
    timeline = [[10.0, "reserve", 201], [10.5, "join", 200], [11.0, "reserve", 503]]
    timeline += [[12.0, "reserve", 201]]
    latencies = {"reserve": [500.0, 2000.0, 250.0], "join": [100.0], "ws": []}
    attempts = ccr.with_sent(timeline, latencies)
    assert [(x.route, x.sent) for x in attempts] == [
        ("reserve", 9.5),
        ("join", 10.4),
        ("reserve", 9.0),
        ("reserve", 11.75),
    ]
    with pytest.raises(ValueError, match="differ"):
        ccr.with_sent(timeline, {"reserve": [1.0], "join": [1.0]})


def test_a_route_resumes_at_the_first_success_sent_after_the_last_failure() -> None:
    # killed at 100, started again at 130
    reserves = [
        a(99.0, 100.5, "reserve", 201),  # in flight at the kill: proves nothing
        a(101.0, 104.0, "reserve", 503),
        a(103.0, 106.0, "reserve", 0),  # the last failure, sent at 103
        a(102.0, 107.0, "reserve", 201),  # sent before it: not yet the route back
        a(104.0, 108.5, "reserve", 201),
        a(105.0, 108.0, "reserve", 201),  # answered first of those sent after 103
    ]
    resumed = ccr.resume(reserves, 100.0, 130.0)
    assert resumed.seconds == pytest.approx(8.0)
    assert (resumed.asked, resumed.failures, resumed.cell()) == (6, 2, "8.0")
    assert resumed.longest == pytest.approx(5.0)


def test_without_failures_a_route_resumes_when_its_first_request_after_the_kill_ends() -> None:
    # a reserve that hangs 12 s on the lost node and then succeeds is not "ok"
    hanging = [a(99.5, 100.2, "reserve", 201), a(100.4, 112.4, "reserve", 201)]
    resumed = ccr.resume(hanging, 100.0, 130.0)
    assert resumed.failures == 0
    assert resumed.seconds == pytest.approx(12.4)
    assert resumed.longest == pytest.approx(12.0)


def test_a_route_that_never_served_again_or_was_never_asked() -> None:
    failing = [a(101.0, 102.0, "join", 502), a(120.0, 121.0, "join", 502)]
    assert ccr.resume(failing, 100.0, 130.0).cell() == "never"
    # served again only after the node came back: the seconds say so
    back = [*failing, a(131.0, 131.5, "join", 200)]
    assert ccr.resume(back, 100.0, 130.0).seconds == pytest.approx(31.5)
    assert ccr.resume([a(90.0, 91.0, "join", 200)], 100.0, 130.0).cell() == "-"


def test_degraded_searches_interrupt_reads() -> None:
    reads = [
        a(100.0, 100.1, "search", 200),
        a(101.0, 101.2, "search", 200, "degraded"),
        a(102.0, 102.1, "view", 200, "replica"),
        a(103.0, 106.0, "view", 0),
        a(140.0, 140.1, "search", 502),  # after the window
    ]
    assert ccr.interrupted(reads, 100.0, 130.0) == 2
    assert ccr.interrupted(reads[:1] + reads[2:3], 100.0, 130.0) == 0


def test_the_line_at_the_end_against_the_fans_own_accounts() -> None:
    fans = [
        {"user": "f1", "kind": "buy", "outcome": "sold_out", "joined_at": 1.0},
        {"user": "f2", "kind": "buy", "outcome": "booked", "joined_at": 1.0, "admitted_at": 5.0},
        {"user": "f3", "kind": "buy", "outcome": None, "joined_at": 2.0},
    ]
    # the queue kept f2 (admitted, then forgotten) and lost f3
    lines = ccr.line_differences({"f1", "f2"}, fans)
    assert lines == [
        "f2 is in it, the fan says it is not: buy, booked; joined_at 1.000, admitted_at 5.000",
        "f3 is not in it, the fan says it is: buy, unfinished; joined_at 2.000",
    ]
    assert ccr.line_differences({"f1", "f3"}, fans) == []
    # an abandoner a sell-out put back at the front is in the line by design
    gone = {"user": "f4", "kind": "abandon", "outcome": "abandoned", "admitted_at": 3.0}
    assert ccr.line_differences({"f1", "f3", "f4"}, [*fans, gone]) == []

"""bench/chaos.py's arithmetic on crafted inputs: recovery per route after a fault, the
counts of a fault's window, the sale rate coming back, and the order check across a Redis
restart (who was waiting, who came back with their place, who was admitted out of order).
No servers: these run in a second."""

from __future__ import annotations

from typing import Any

from bench import chaos_report as cr


def a(at: float, route: str, status: int, note: str = "") -> cr.Attempt:
    return cr.Attempt(at, route, status, note)


def test_recovery_counts_from_the_component_back_to_the_first_success_after_failing() -> None:
    reserves = [a(9, "reserve", 201), a(11, "reserve", 503), a(14, "reserve", 0)]
    reserves += [a(17, "reserve", 201), a(18, "reserve", 503), a(19.5, "reserve", 201)]
    # fault at 10, component back at 15, window to 30: last failure at 18, success at 19.5
    assert cr.recovery(reserves, 10, 15, 30) == "4.5"
    assert cr.recovery([a(12, "reserve", 201)], 10, 15, 30) == "ok"
    assert cr.recovery([a(12, "reserve", 503)], 10, 15, 30) == "never"
    assert cr.recovery([a(5, "reserve", 503), a(31, "reserve", 201)], 10, 15, 30) == "-"
    # a route that answered again before the health check said so: 0
    assert cr.recovery([a(11, "join", 502), a(12, "join", 200)], 10, 15, 30) == "0.0"


def test_degraded_searches_and_refused_reserves_count_as_failures() -> None:
    assert cr.failed(a(1, "search", 200, "degraded"))
    assert not cr.failed(a(1, "search", 200))
    assert cr.failed(a(1, "reserve", 403))
    assert not cr.failed(a(1, "reserve", 409))
    assert not cr.failed(a(1, "join", 429))
    columns = cr.by_column([a(2, "probe_join", 200), a(1, "join", 503), a(3, "status", 503)])
    assert [x.at for x in columns["join"]] == [1, 2]
    assert [x.at for x in columns["queue"]] == [3]  # the waiting room: status and sockets
    assert all(not columns[c] for c in ("reserve", "confirm", "search", "view"))


def test_window_counts_only_what_fell_inside() -> None:
    attempts = [
        a(5, "reserve", 503),
        a(10, "reserve", 503),
        a(11, "confirm", 0),
        a(12, "reserve", 403),
        a(13, "search", 200, "degraded"),
        a(31, "reserve", 502),
    ]
    assert cr.window_counts(attempts, 10, 30) == cr.Window(1, 1, 1, 1)


def test_sale_rate_back_is_the_sales_usual_pace_again_after_the_component() -> None:
    steady = [(float(t), 2) for t in range(0, 20)]  # 2 seats a second
    stalled = steady[:12] + [(float(t), 2) for t in range(17, 30)]  # nothing from 12 to 17
    assert cr.typical_rate(steady) == 2.0
    assert cr.typical_rate(stalled) == 2.0  # the median: the stall does not set the pace
    # [15.5, 20.5) holds 8 seats, 1.6 a second: 75% of the usual 2 or more
    assert cr.sale_rate_back(stalled, back=13, until=30, typical=2.0) == "2.5"
    assert cr.sale_rate_back(steady, back=13, until=30, typical=2.0) == "0.0"
    assert cr.sale_rate_back(stalled, back=13, until=14, typical=2.0) == ">1"
    assert cr.sale_rate_back(steady[:12], back=13, until=30, typical=2.0) == "-"
    assert cr.seats_between(stalled, 11, 18) == 4


def test_5xx_after_the_component_was_back_are_counted_apart() -> None:
    attempts = [a(10, "status", 502), a(12, "status", 502), a(15, "status", 502)]
    assert cr.window_counts(attempts, 10, 30, back=11) == cr.Window(3, 0, 0, 0, 2)


def fan(
    user: str, tickets: list[list[Any]], admissions: list[float], **more: Any
) -> dict[str, Any]:
    return {"user": user, "kind": "buy", "tickets": tickets, "admissions": admissions, **more}


def test_the_cohort_is_who_was_waiting_at_the_restart() -> None:
    fans = [
        fan("ahead", [[1, "waiting", 10, "e1"], [101, "waiting", 10, "e2"]], [110]),
        fan("behind", [[2, "waiting", 20, "e1"], [102, "waiting", 20, "e2"]], [111]),
        fan("admitted-before", [[3, "waiting", 5, "e1"]], [50]),
        fan("late", [[150, "waiting", 900, "e2"]], [160]),
        fan("leaver", [[4, "waiting", 30, "e1"]], [], kind="leave"),
        fan("moved", [[5, "waiting", 40, "e1"], [103, "waiting", 950, "e2"]], []),
    ]
    members = {m.user: m for m in cr.cohort(fans, at=100, lost=True, session_seconds=600)}
    assert set(members) == {"ahead", "behind", "moved"}
    assert members["ahead"] == cr.Member("ahead", 10, 110, 101, False)
    assert members["moved"].moved and members["moved"].admitted is None
    kept = cr.cohort(fans, at=100, lost=False, session_seconds=600)
    assert all(m.back_in_line == 100 for m in kept)
    assert [m.user for m in kept if m.moved] == ["moved"]  # a new place: it lost its own
    # what came after the next restart (at 101.5) is that one's
    bounded = {m.user: m for m in cr.cohort(fans, 100, True, 600, until=101.5)}
    assert bounded["ahead"].admitted is None and bounded["ahead"].back_in_line == 101
    assert bounded["behind"].back_in_line is None and not bounded["moved"].moved


def test_admission_time_is_the_servers_when_a_token_or_ticket_names_it() -> None:
    polled = fan("p", [[1, "waiting", 10, "e"], [112.0, "admitted", 710_500, "e"]], [112.0])
    assert cr.admission_time(polled, 0, 600, 112.0) == 110.5
    # heard over a socket opened late: the token's exp (710 = admitted at 110.x) says when
    pushed = fan("q", [[1, "waiting", 11, "e"]], [50.0, 125.2], admission_exps=[650, 710])
    assert cr.admission_time(pushed, 1, 600, 125.2) == 110.5
    unknown = fan("r", [[1, "waiting", 12, "e"]], [111.2])
    assert cr.admission_time(unknown, 0, 600, 111.2) == 111.2


def test_order_check_finds_fans_passed_over_and_excuses_those_not_back_yet() -> None:
    in_order = [cr.Member("a", 1, 10.0, 5.0, False), cr.Member("b", 2, 10.5, 5.0, False)]
    assert cr.order_check(in_order).holds
    swapped = [cr.Member("a", 1, 14.0, 5.0, False), cr.Member("b", 2, 10.0, 5.0, False)]
    order = cr.order_check(swapped, tolerance=1.0)
    assert (order.pairs, order.inversions, order.worst_seconds) == (1, 1, 4.0)
    # within the tolerance: the same admitter tick, heard a little apart
    assert cr.order_check(swapped, tolerance=5.0).holds
    # the fan ahead came back to the line only after the other was admitted
    late = [cr.Member("a", 1, 14.0, 12.0, False), cr.Member("b", 2, 10.0, 5.0, False)]
    assert cr.order_check(late).excused == 1 and cr.order_check(late).holds
    # back in line as the other's admission was made: its answer and that tick crossed
    crossed = [cr.Member("a", 1, 14.0, 9.995, False), cr.Member("b", 2, 10.0, 5.0, False)]
    assert cr.order_check(crossed, tolerance=1.0).excused == 1
    # never admitted, though in line, while the one behind was
    passed = [cr.Member("a", 1, None, 5.0, False), cr.Member("b", 2, 10.0, 5.0, False)]
    assert cr.order_check(passed).inversions == 1
    # ... unless the one behind was admitted just before the next moment (the next kill),
    # from which the fan ahead's admission is not this cohort's to see
    assert cr.order_check(passed, until=10.5).excused == 1
    assert cr.order_check(passed, until=12.0).inversions == 1  # control: well before it
    moved = [cr.Member("a", 1, None, None, True)]
    assert not cr.order_check(moved).holds


def test_unfinished_fans_by_what_they_last_heard() -> None:
    fans = [
        {"outcome": "booked"},
        {"outcome": None, "last_status": "waiting"},
        {"outcome": "failed:join_503"},
        {"outcome": "sold_out"},
    ]
    assert cr.unfinished(fans) == {"unfinished:waiting": 1, "failed:join_503": 1}


def test_fans_who_got_in_line_later_must_not_be_admitted_first() -> None:
    fans = [
        fan("restored", [[1, "waiting", 10, "e1"], [101, "waiting", 10, "e2"]], [120]),
        fan("slow-back", [[2, "waiting", 11, "e1"], [112, "waiting", 11, "e2"]], [121]),
        fan("newcomer", [[105, "waiting", 950, "e2"]], [110]),
        fan("readmitted", [[3, "waiting", 1, "e1"], [104, "waiting", 1, "e2"]], [50, 104.5]),
    ]
    members = cr.cohort(fans, at=100, lost=True, session_seconds=600)
    assert [m.user for m in members] == ["restored", "slow-back"]
    later = cr.newcomers(fans, 100, members, 600)
    # the fan admitted before the restart came back with its own (early) place
    assert [(m.user, m.place, m.admitted, m.back_in_line) for m in later] == [
        ("newcomer", 950, 110, 105),
        ("readmitted", 1, 104.5, 104),
    ]
    order = cr.order_check(members, 1.0, later)
    # "restored" stood in line from 101 with place 10 and was admitted at 120, after the
    # newcomer (place 950, admitted at 110): out of order. "slow-back" came back at 112,
    # after the newcomer was admitted: excused. The readmitted fan was ahead of all.
    assert (order.cohort, order.newcomers, order.inversions, order.excused) == (2, 2, 1, 1)
    assert not order.holds

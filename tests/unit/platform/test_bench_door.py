"""The benches' side of the queue's door (bench/door.py, bench/bots.py,
bench/solve_browser.py) on crafted inputs: a minted solution is one the waitingroom
takes, for its fan and event only; the bots' solver finds the waitingroom's counter and
stops at its CPU budget; the seat shares and the target's verdict."""

from __future__ import annotations

import random
from itertools import count

import altcha
import pytest

from bench.bots import (
    Share,
    door_figures,
    door_levels,
    seats_by_user,
    share_of,
    target_met,
    without_spent_bots,
)
from bench.door import device_seconds, minted, solve_within
from bench.onsale_setup import Ledger
from bench.solve_browser import percentile
from ticketing.domain.challenge import ITERATIONS, max_tries
from waitingroom.queue import challenge

SECRET = "s" * 40


def test_a_minted_solution_is_taken_for_its_fan_and_event_only() -> None:
    payload, tries = minted(SECRET, 7, "alice", max_tries(3), random.Random(1), 2500)
    verdict = challenge.verify(SECRET, 7, "alice", payload)
    assert verdict.ok
    assert 1 <= tries <= max_tries(3)
    assert verdict.solve_ms == pytest.approx(tries / 2500 * 1000, abs=1)
    assert challenge.verify(SECRET, 7, "bob", payload).reason == "signature"
    assert challenge.verify(SECRET, 8, "alice", payload).reason == "signature"
    assert device_seconds(3000, 3000) == 1.0


def test_the_bots_solver_finds_the_counter_the_waitingroom_hid() -> None:
    issued = challenge.issue(SECRET, 7, "bot-1", 1)
    solved = solve_within(issued, cpu_budget=60)
    assert solved.payload is not None
    assert challenge.verify(SECRET, 7, "bot-1", solved.payload).ok
    # The same counter the altcha package's own solver finds, tried from 0 the same way.
    reference = altcha.solve_challenge(altcha.Challenge.from_dict(issued), timeout=60)
    assert reference is not None and solved.tries == reference.counter + 1


def test_the_bots_solver_gives_up_when_its_cpu_budget_is_spent() -> None:
    challenge_key, key_key = challenge._keys(SECRET, 7, "bot-2")
    hidden = altcha.create_challenge(
        algorithm=challenge.ALGORITHM,
        cost=ITERATIONS,
        counter=1000,
        data={"max_tries": max_tries(1)},
        hmac_secret=challenge_key,
        hmac_key_secret=key_key,
    ).to_dict()
    ticks = count()
    clock = lambda: next(ticks) * 0.1  # noqa: E731 - a tenth of a CPU second per look
    gave_up = solve_within(hidden, cpu_budget=0.35, clock=clock)
    assert gave_up.payload is None and gave_up.tries == 3
    # Control: the same challenge with budget enough finds the counter.
    found = solve_within(hidden, cpu_budget=60)
    assert found.payload is not None and found.tries == 1001


def ledger(bookings: dict[str, list[int]], holds: dict[str, tuple[list[int], str]]) -> Ledger:
    return Ledger(
        bookings={f"b{i}": (u, ids, "pi", 0.0) for i, (u, ids) in enumerate(bookings.items())},
        refunded_bookings=0,
        tickets={},
        holds={f"h{i}": (u, ids, st, 0.0) for i, (u, (ids, st)) in enumerate(holds.items())},
        all_hold_ids=set(),
        on_sale_at=0.0,
    )


def test_the_seats_that_went_to_bots_and_to_fans() -> None:
    held = ledger(
        {"bot0-on-0001": [1, 2, 3, 4], "on-000001": [5]},
        {
            "bot1-on-0002": ([6, 7, 8, 9], "held"),
            "on-000002": ([10, 11], "held"),
            "on-000003": ([12], "released"),
        },
    )
    assert share_of(seats_by_user(held, pay=True)) == Share(4, 1, 1, 1)
    share = share_of(seats_by_user(held, pay=False))
    assert share == Share(4, 2, 1, 1)  # the released hold is nobody's
    assert share.bot_share == pytest.approx(4 / 6)


def test_the_target_is_a_quarter_of_the_share_with_the_door_off() -> None:
    off = Share(bots=300, fans=700, bot_accounts=75, fan_accounts=280)
    assert target_met(off, Share(75, 925, 19, 370))  # 7.5% against 30%: a quarter
    assert not target_met(off, Share(80, 920, 20, 368))
    assert target_met(Share(0, 10, 0, 5), Share(0, 10, 0, 5))  # no bots got seats either way


def test_door_figures_of_bot_accounts() -> None:
    records = [
        {"joined_at": 12.0, "join_sent": 10.0, "door": {"cpu_s": 0.5, "gave_up": False}},
        {"joined_at": None, "join_sent": 10.0, "door": {"cpu_s": 1.0, "gave_up": True}},
        {"joined_at": 11.0, "join_sent": 10.0},
    ]
    figures = door_figures(records)
    assert (figures.accounts, figures.met_door, figures.in_line, figures.gave_up) == (3, 2, 2, 1)
    assert figures.cpu_s == 1.5 and sorted(figures.to_line_s) == [1.0, 2.0]
    assert figures.to_line(0.5) == 2.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 95) == 19.0
    assert percentile(values, 50) == 10.0
    assert percentile([3.0], 95) == 3.0


def test_the_surge_adds_up_its_load_processes_challenges() -> None:
    from bench.surge import merge_door

    def one(statuses: dict[str, int], seconds: float, solves: list[float]) -> dict:
        return {
            "challenge": {
                "latencies_ms": [1.0] * sum(statuses.values()),
                "statuses": statuses,  # as JSON gives them back: string keys
                "samples": {},
                "seconds": seconds,
            },
            "genuine": {"solve_ms": solves, "tries": [100] * len(solves)},
        }

    merged = merge_door([one({"200": 3}, 2.0, [10.0]), one({"200": 2, "503": 1}, 3.0, [])])
    assert merged["challenge"]["statuses"] == {200: 5, 503: 1}
    assert merged["challenge"]["seconds"] == 3.0  # side by side: the longest, not the sum
    assert len(merged["challenge"]["latencies_ms"]) == 6
    assert merged["genuine"] == {"solve_ms": [10.0], "tries": [100]}


def test_the_ledger_check_leaves_out_only_the_bot_accounts_the_door_turned_away() -> None:
    spent = {"user": "bot-0-1", "outcome": "failed:join_403", "door": {"gave_up": True}}
    in_line = {"user": "bot-0-2", "outcome": None, "door": {"gave_up": False}}
    fan = {"user": "fan-1", "outcome": "failed:join_403", "door": {"gave_up": True}}
    run = {"pay": False, "loads": {"fans": [spent, in_line, fan], "loop_lag_ms": []}}
    kept = without_spent_bots(run)
    assert kept["loads"]["fans"] == [in_line, fan]  # a fan turned away is still a failure
    assert kept["pay"] is False and kept["loads"]["loop_lag_ms"] == []
    assert len(run["loads"]["fans"]) == 3  # the report's own figures keep every account


def test_the_door_levels_name_the_start_and_each_step_from_the_on_sale() -> None:
    samples = [
        (99.0, {"door_level": None}),  # a sample of a tree without the figure
        (100.0, {"door_level": 3}),
        (101.0, {"door_level": 3}),
        (112.4, {"door_level": 4}),
        (130.0, {"door_level": 3}),
    ]
    assert door_levels(samples, on_sale_at=100.0) == "3 from the start; 4 at 12 s; 3 at 30 s"
    assert door_levels([(1.0, {})], on_sale_at=0.0) == "-"

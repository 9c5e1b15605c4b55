"""bench/onsale.py's arithmetic on crafted inputs: percentiles, over-admission, ETA error,
sold-out notice lag, the selling window, double-sale and unpaid-charge detection, the
per-second series and the targets' verdicts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import onsale_report as report


def fan(user: str, **fields: object) -> dict:
    record = {
        "user": user,
        "joined_at": None,
        "admitted_at": None,
        "sold_out_at": None,
        "eta": None,
        "eta_at": None,
        "outcome": None,
        "ticket_ids": [],
    }
    record.update(fields)
    return record


def test_latency_takes_nearest_rank_percentiles() -> None:
    lat = report.latency(float(v) for v in range(100, 0, -1))  # 1..100 ms, unsorted
    assert (lat.count, lat.p50_ms, lat.p99_ms) == (100, 50.0, 99.0)
    one_slow = report.latency([10.0] * 99 + [5000.0])
    assert one_slow.p99_ms == 10.0  # the 99th of 100 is not the single outlier
    assert report.latency([10.0] * 98 + [5000.0] * 2).p99_ms == 5000.0
    assert report.latency([]) == report.Latency(0, 0.0, 0.0)


def test_over_admission_is_admitted_per_purchase() -> None:
    assert report.over_admission(110, 100) == pytest.approx(1.10)
    assert report.over_admission(389, 250) == pytest.approx(1.556)
    assert report.over_admission(5, 0) is None


def test_eta_error_uses_the_join_estimate_or_the_first_after_the_draw() -> None:
    fans = [
        # joined at 100 told 10 s, admitted at 112: |10 - 12| / 12
        fan("a", joined_at=100.0, eta=10, eta_at=100.0, admitted_at=112.0),
        # pre-queue: no estimate at join; 20 s heard at 130, admitted at 150: exact
        fan("b", joined_at=90.0, eta=20, eta_at=130.0, admitted_at=150.0),
        # told 30 s, admitted after 10: |30 - 10| / 10
        fan("c", joined_at=100.0, eta=30, eta_at=100.0, admitted_at=110.0),
        fan("never-admitted", joined_at=100.0, eta=5, eta_at=100.0),
        fan("no-estimate", joined_at=100.0, admitted_at=120.0),
    ]
    errors = report.eta_errors(fans)
    assert errors == pytest.approx([2 / 12, 0.0, 2.0])
    assert report.eta_pairs(fans) == [(10.0, 12.0), (20.0, 20.0), (30.0, 10.0)]
    assert report.median(errors) == pytest.approx(2 / 12)
    assert report.median([]) is None


def test_waits_run_from_join_to_hearing_the_admission() -> None:
    fans = [fan("a", joined_at=10.0, admitted_at=14.5), fan("b", joined_at=10.0)]
    assert report.waits(fans) == [4.5]


def test_admission_to_hold_runs_from_the_last_admission_heard_to_the_hold() -> None:
    fans = [
        fan("a", last_admitted_at=20.0, held_at=20.25),
        fan("b", last_admitted_at=30.0),  # admitted, never held: not counted
        fan("c", held_at=5.0),  # no admission heard (a queue-less sale): not counted
    ]
    assert report.admission_to_hold(fans) == [0.25]


def test_notice_lag_counts_fans_in_line_at_the_last_sale_only() -> None:
    fans = [
        fan("waited", joined_at=50.0, sold_out_at=100.4),
        fan("admitted-then-told", joined_at=60.0, admitted_at=70.0, sold_out_at=101.5),
        fan("joined-after", joined_at=100.2, sold_out_at=100.25),  # told in its join
        fan("booked", joined_at=40.0, outcome="booked"),
    ]
    assert report.notice_lags(fans, 100.0) == pytest.approx([0.4, 1.5])
    assert report.notice_lags(fans, None) == []  # never sold out: no lag to measure


def test_selling_window_runs_from_first_to_last_sale() -> None:
    sold = report.selling([(105.0, 2), (100.0, 4), (110.0, 4)])
    assert (sold.seats, sold.seconds, sold.rate) == (10, 10.0, 1.0)
    assert report.selling([]).rate == 0.0
    assert report.selling([(100.0, 3)]).rate == 0.0  # one sale has no window


def test_time_to_share_leaves_out_the_tail() -> None:
    sales = [(101.0, 40), (102.0, 50), (160.0, 10)]  # 90 of 100 seats by 102
    assert report.time_to_share(sales, 100.0, 100, 0.9) == 2.0
    assert report.time_to_share(sales, 100.0, 100, 1.0) == 60.0
    assert report.time_to_share(sales[:1], 100.0, 100, 0.9) is None


def test_double_sales_finds_a_seat_in_two_bookings() -> None:
    bookings = {"b1": [1, 2], "b2": [3, 4]}
    tickets = {
        1: ("booked", "b1"),
        2: ("booked", "b1"),
        3: ("booked", "b2"),
        4: ("booked", "b2"),
        5: ("available", None),
    }
    assert report.double_sales(bookings, tickets) == []  # the control: a clean ledger
    twice = report.double_sales({**bookings, "b3": [2, 5]}, tickets)
    assert "1 seat(s) in two bookings" in twice
    assert "1 booked seat(s) not marked booked by their own booking" in twice  # seat 5


def test_double_sales_finds_seats_the_bookings_do_not_explain() -> None:
    bookings = {"b1": [1, 2]}
    tickets = {1: ("booked", "b1"), 2: ("booked", "b9"), 3: ("booked", "b2")}
    problems = report.double_sales(bookings, tickets)
    assert problems == [
        "1 booked seat(s) not marked booked by their own booking",
        "1 seat(s) booked outside any confirmed booking",
    ]


def test_fans_answered_twice() -> None:
    fans = [fan("a", ticket_ids=[1, 2]), fan("b", ticket_ids=[3])]
    assert report.fans_answered_twice(fans) == []
    fans.append(fan("c", ticket_ids=[2, 4]))
    assert report.fans_answered_twice(fans) == ["1 seat(s) told to two fans as theirs"]


def test_unmatched_charges_are_succeeded_intents_of_ours_without_booking_or_refund() -> None:
    intents = [
        {"id": "pi_booked", "status": "succeeded", "metadata": {"hold_id": "h1"}},
        {"id": "pi_refunded", "status": "succeeded", "metadata": {"hold_id": "h2"}},
        {"id": "pi_declined", "status": "requires_payment_method", "metadata": {"hold_id": "h3"}},
        {"id": "pi_lost", "status": "succeeded", "metadata": {"hold_id": "h4"}},
        {"id": "pi_other_run", "status": "succeeded", "metadata": {"hold_id": "elsewhere"}},
    ]
    holds = {"h1", "h2", "h3", "h4"}
    assert report.unmatched_charges(intents, {"pi_booked"}, {"pi_refunded"}, holds) == ["pi_lost"]
    refunded = {"pi_refunded", "pi_lost"}
    assert report.unmatched_charges(intents, {"pi_booked"}, refunded, holds) == []


def test_refunds_name_their_intent_directly_or_through_the_charge() -> None:
    intents = [
        {"id": "pi_1", "latest_charge": "ch_1"},
        {"id": "pi_2", "latest_charge": {"id": "ch_2"}},
        {"id": "pi_3", "latest_charge": "ch_3"},
    ]
    refunds = [{"payment_intent": "pi_1", "charge": "ch_1"}, {"charge": "ch_2"}]
    assert report.refunded_intents(intents, refunds) == {"pi_1", "pi_2"}


def test_still_in_line_counts_fans_who_kept_their_place() -> None:
    fans = [
        fan("told", joined_at=1.0, outcome="sold_out"),
        fan("stopped-waiting", joined_at=1.0),
        fan("admitted-then-told", joined_at=1.0, admitted_at=2.0, outcome="sold_out"),
        fan("left", joined_at=1.0, outcome="left"),
        fan("join-failed", outcome="failed:join_500"),
        # admitted, the admission ended unused, joined again: in line once more
        fan(
            "rejoined",
            joined_at=1.0,
            admitted_at=2.0,
            last_admitted_at=2.0,
            last_joined_at=3.0,
            outcome="sold_out",
        ),
        fan(
            "rejoined-admitted",
            joined_at=1.0,
            admitted_at=2.0,
            last_joined_at=3.0,
            last_admitted_at=4.0,
            outcome="sold_out",
        ),
    ]
    assert report.still_in_line(fans) == 3


def test_waiting_at_end_counts_abandoners_the_sell_out_put_back_in_line() -> None:
    fans = [
        fan("told", joined_at=1.0, outcome="sold_out"),
        fan("abandoned-late", joined_at=1.0, admitted_at=90.0, outcome="abandoned"),
        fan("abandoned-edge", joined_at=1.0, admitted_at=70.5, outcome="abandoned"),
        fan("abandoned-early", joined_at=1.0, admitted_at=50.0, outcome="abandoned"),
        fan("booked", joined_at=1.0, admitted_at=95.0, outcome="booked"),
    ]
    # sold out at 100 with a 30 s claim window: 90 was surely still open, 70.5 may have been
    assert report.waiting_at_end(fans, 100.0, 30) == (2, 3)
    assert report.waiting_at_end(fans, None, 30) == (1, 1)  # no sell-out: only the line


def test_series_buckets_by_second_from_on_sale_and_fills_gaps() -> None:
    on_sale = 1000.0
    samples = [
        (
            999.2,
            {
                "waiting": 5,
                "active": 0,
                "admitted_total": 0,
                "holds": 0,
                "bookings": 0,
                "seats_sold": 0,
            },
        ),
        (
            1001.1,
            {
                "waiting": 3,
                "active": 2,
                "admitted_total": 2,
                "holds": 1,
                "bookings": 0,
                "seats_sold": 2,
            },
        ),
    ]
    fans = [fan("a", sold_out_at=1001.9), fan("b", sold_out_at=1001.2), fan("c")]
    rows = report.series(samples, fans, [1000.5, 1000.7], on_sale)
    assert [r["second"] for r in rows] == [-1, 0, 1]
    assert rows[1]["http_409"] == 2 and rows[1]["waiting"] == 5  # no sample: the last one
    assert rows[2]["sold_out_notices"] == 2 and rows[2]["active"] == 2
    assert rows[0]["http_409"] == 0


def test_csv_has_a_row_per_run_and_second(tmp_path: Path) -> None:
    rows = report.series([(10.0, {"waiting": 1})], [], [], 10.0)
    path = tmp_path / "series.csv"
    report.write_csv(path, {"paid": rows, "reserve-only": rows})
    with path.open() as f:
        read = list(csv.DictReader(f))
    assert [(r["run"], r["second"], r["waiting"]) for r in read] == [
        ("paid", "0", "1"),
        ("reserve-only", "0", "1"),
    ]


def figures(name: str, **changes: object) -> report.RunFigures:
    fields: dict = {
        "name": name,
        "selling": report.Selling(1000, 0.0, 10.0),
        "sold_out_after": 12.0,
        "sold_90_after": 9.0,
        "join": report.Latency(10, 5.0, 20.0),
        "wait": report.Latency(10, 1000.0, 5000.0),
        "reserve": report.Latency(10, 50.0, 400.0),
        "confirm": report.Latency(10, 400.0, 1200.0),
        "admitted": 105,
        "heard_admitted": 105,
        "purchases": 100,
        "notice_lag_p99": 0.5,
        "notice_lags": 50,
        "eta_error": 0.1,
        "eta_samples": 80,
        "eta_gap": 1.0,
        "errors_5xx": 0,
    }
    fields.update(changes)
    return report.RunFigures(**fields)


def test_targets_pass_when_every_figure_is_within() -> None:
    verdicts = report.targets(figures("paid"), figures("reserve-only", confirm=None), 300)
    assert all(passed for passed, _ in verdicts), verdicts
    assert len(verdicts) == 10


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"selling": report.Selling(1000, 0.0, 25.0)}, "sold/s"),  # 40/s vs 100/s
        ({"reserve": report.Latency(10, 50.0, 500.0)}, "reserve p99"),
        ({"confirm": report.Latency(10, 400.0, 1300.0)}, "confirm p99"),
        ({"errors_5xx": 1}, "zero 5xx"),
        ({"double_sold": ["1 seat(s) in two bookings"]}, "zero double sales"),
        ({"unpaid_charges": ["pi_x"]}, "zero charges"),
        ({"admitted": 111}, "over-admission"),
        ({"notice_lag_p99": 1.0}, "notice lag"),
        ({"notice_lag_p99": None}, "notice lag"),  # never told: no pass by default
        ({"eta_error": 0.16}, "ETA error"),
        ({"ledger": ["1 fan(s) never finished"]}, "ledger"),
    ],
)
def test_each_target_fails_on_its_own(change: dict, target: str) -> None:
    verdicts = report.targets(figures("paid", **change), figures("reserve-only"), 300)
    failed = [line for passed, line in verdicts if not passed]
    assert len(failed) == 1 and target in failed[0], failed


def test_a_stopped_fan_is_named_by_what_it_heard_or_how_long_its_join_was_out() -> None:
    from bench.onsale import stopped_as

    assert stopped_as(fan("a", last_status="waiting", join_sent=1.0)) == "waiting"
    assert stopped_as(fan("b", last_status=None)) == "not arrived"
    # A join still out at the stop: a late arrival, or a phone still solving the door's
    # challenge. Out for longer than any join takes, it is a fault, not the stop.
    assert stopped_as(fan("c", last_status=None, join_sent=100.0, stopped_at=104.0)) == "joining"
    late = fan("d", last_status=None, join_sent=100.0, stopped_at=111.0)
    assert stopped_as(late) == "joining for over 10 s"

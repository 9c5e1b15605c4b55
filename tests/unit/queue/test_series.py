"""The console's series: seats held and sold per second from the samples' counters."""

import pytest

from waitingroom.queue.series import RATE_SPAN_MS, Sample, with_rates


def sample(at_s: float, held_total: int, booked: int) -> Sample:
    return Sample(
        at_ms=int(at_s * 1000),
        waiting=10,
        pre_queue=0,
        active=2,
        admitted_total=5,
        effective_admit_per_minute=60.0,
        measured_admit_per_minute=58.5,
        available=100 - held_total,
        reserved=held_total - booked,
        booked=booked,
        seats_held_total=held_total,
    )


def test_a_sample_survives_its_packing():
    s = sample(1_700_000_000.5, 7, 3)
    assert Sample.unpack(s.pack()) == s


def test_rates_are_averaged_over_the_last_five_seconds():
    # 4 seats held and 2 sold every second, sampled a second apart.
    samples = [sample(100 + i, 4 * i, 2 * i) for i in range(10)]
    rows = with_rates(samples)
    assert rows[0]["seats_held_per_second"] is None  # nothing earlier to compare with
    assert [r["seats_held_per_second"] for r in rows[1:]] == [4.0] * 9
    assert [r["seats_sold_per_second"] for r in rows[1:]] == [2.0] * 9
    assert rows[3]["at_ms"] == 103_000 and rows[3]["booked"] == 6


def test_jittery_beats_average_out():
    # The lease moves: samples 0.9 s and 1.1 s apart; one tally lands a beat late.
    times = [0, 0.9, 2.0, 2.9, 4.0, 4.9, 6.0, 6.9, 8.0]
    held = [0, 10, 10, 30, 40, 50, 60, 70, 80]
    rows = with_rates([sample(100 + t, h, 0) for t, h in zip(times, held, strict=True)])
    # Second by second it would read 11, 0, 20, 9...; over spans shorter than RATE_SPAN_MS
    # (at the start) it still jumps; from 6.0 s on the span reaches back at least
    # RATE_SPAN_MS and it reads what it is, 10 seats a second, within 2%.
    assert RATE_SPAN_MS == 5000
    assert [r["seats_held_per_second"] for r in rows[1:3]] == [11.11, 5.0]  # since the start
    assert [r["seats_held_per_second"] for r in rows[-3:]] == [pytest.approx(10, rel=0.02)] * 3


def test_a_refund_or_a_lost_counter_is_never_a_negative_rate():
    rows = with_rates([sample(100, 50, 20), sample(101, 0, 18)])
    assert (rows[1]["seats_held_per_second"], rows[1]["seats_sold_per_second"]) == (0.0, 0.0)


def test_since_returns_only_newer_samples_with_rates_from_older_ones():
    samples = [sample(100 + i, 3 * i, i) for i in range(8)]
    rows = with_rates(samples, since_ms=105_000)
    assert [r["at_ms"] for r in rows] == [106_000, 107_000]
    assert [r["seats_held_per_second"] for r in rows] == [3.0, 3.0]


def test_samples_written_before_a_field_was_added_still_read():
    # A deployment's last 15 minutes outlive an upgrade: a sample without `unclaimed`.
    old = b"[100000,3,0,1,4,60.0,58.5,10,2,1,3]"
    assert Sample.unpack(old).unclaimed == 0
    assert Sample.unpack(old).seats_held_total == 3

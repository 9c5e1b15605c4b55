"""The waiting room's rules without Redis: the auditable draw, the measured rate and wait
estimate, sell-out and auto mode's controller (operator settings: test_contract.py)."""

import hashlib
import hmac
import random

import pytest

from ticketing.domain.queue import (
    BookingHealth,
    Inventory,
    OrderCheck,
    admission_pace,
    auto_start_rate,
    commitment,
    draw_order,
    draw_users,
    eta_seconds,
    is_sold_out,
    measured_rate_per_minute,
    member_key,
    member_ref,
    next_auto_rate,
    order_digest,
)

SEED = "11" * 32
KEY = member_key("a-secret", 7)


def test_the_draw_is_a_permutation_fixed_by_seed_and_members():
    refs = [member_ref(KEY, 7, f"fan-{i}") for i in range(200)]
    order = draw_order(SEED, refs)
    assert sorted(order) == sorted(refs)
    assert order != refs  # not the arrival order
    # the arrival order does not matter, only who is in it
    assert draw_order(SEED, list(reversed(refs))) == order
    assert draw_order("22" * 32, refs) != order


def test_anyone_can_recompute_the_draw_with_standard_primitives():
    refs = [member_ref(KEY, 7, f"fan-{i}") for i in range(20)]
    seed = bytes.fromhex(SEED)
    by_hand = sorted(refs, key=lambda r: hmac.new(seed, r.encode(), hashlib.sha256).hexdigest())
    assert draw_order(SEED, refs) == by_hand
    assert commitment(SEED) == hashlib.sha256(seed).hexdigest()
    key = hmac.new(b"a-secret", b"fairness-member:7", hashlib.sha256).digest()
    assert member_ref(KEY, 7, "alice") == hmac.new(key, b"7:alice", hashlib.sha256).hexdigest()


def test_draw_users_pairs_users_with_their_public_refs():
    users = [f"u{i}" for i in range(10)]
    key = member_key("a-secret", 3)
    drawn = draw_users(SEED, key, 3, users)
    assert sorted(u for u, _ in drawn) == sorted(users)
    assert [ref for _, ref in drawn] == draw_order(SEED, [member_ref(key, 3, u) for u in users])


def test_measured_rate_counts_what_was_admitted_lately():
    now = 1000
    assert measured_rate_per_minute({}, now) == 0.0
    steady = {s: 10 for s in range(now - 59, now + 1)}  # 10 a second for a minute
    assert measured_rate_per_minute(steady, now) == pytest.approx(600)
    # started 20 s ago: the rate since then, not diluted over the whole window
    recent = {s: 10 for s in range(now - 19, now + 1)}
    assert measured_rate_per_minute(recent, now) == pytest.approx(600)
    # older than the window does not count
    assert measured_rate_per_minute({now - 61: 100}, now) == 0.0
    # one early burst is spread over at least five seconds
    assert measured_rate_per_minute({now: 5}, now) == pytest.approx(60)


def test_waits_are_told_by_the_set_rate_until_admission_has_run_a_while():
    now = 1000
    # before any admission, and in the first seconds of it, the set rate: one second of
    # admissions at 600 a minute would measure as 120 (spread over five seconds)
    assert admission_pace(600, {}, now, slots_free=True) == 600
    assert admission_pace(600, {now: 10}, now, slots_free=True) == 600
    assert measured_rate_per_minute({now: 10}, now) == pytest.approx(120)
    # once it has run five seconds, what it does, when that is slower than set
    # (sessions, seats or claims hold it back)
    slow = {s: 2 for s in range(now - 9, now + 1)}
    assert admission_pace(600, slow, now, slots_free=True) == pytest.approx(120)
    # and never faster than set (an operator who just slowed it down is believed)
    fast = {s: 20 for s in range(now - 9, now + 1)}
    assert admission_pace(600, fast, now, slots_free=True) == 600
    # every session slot taken and nothing measured: no rate to tell a wait by
    assert admission_pace(600, {}, now, slots_free=False) == 0.0
    assert eta_seconds(5, admission_pace(600, {}, now, slots_free=False)) is None


def test_eta_comes_from_the_rate():
    assert eta_seconds(1, 60) == 1
    assert eta_seconds(100, 600) == 10
    assert eta_seconds(7, 0) is None


def test_sold_out_only_when_nothing_could_come_back():
    assert is_sold_out(Inventory(0, 0, 50))
    assert not is_sold_out(Inventory(0, 3, 47))  # held seats return when holds expire
    assert not is_sold_out(Inventory(1, 0, 49))


CALM = BookingHealth(backlog=0, reserve_latency_ms=20)
BUSY = BookingHealth(backlog=1000, reserve_latency_ms=20)
SLOW = BookingHealth(backlog=0, reserve_latency_ms=2000)
PLENTY = Inventory(10_000, 0, 0)


def _next(current, health, inventory=PLENTY, active=0, ceiling=600):
    return next_auto_rate(current, ceiling, health, inventory, active, 200, 500)


def test_auto_mode_climbs_to_the_ceiling_while_booking_is_calm():
    rate = auto_start_rate(600)
    assert rate == 150
    seen = []
    for _ in range(20):
        rate = _next(rate, CALM)
        seen.append(rate)
    assert seen == sorted(seen) and seen[-1] == 600 and max(seen) <= 600


def test_auto_mode_halves_when_the_booking_path_is_overloaded():
    assert _next(400, BUSY) == 200
    assert _next(400, SLOW) == 200
    assert _next(8, BUSY) == 6  # never below a trickle, so it can find out it recovered
    unknown = BookingHealth(None, None)
    assert _next(300, unknown) == 360  # not measured is not overloaded


def test_auto_mode_holds_in_between():
    between = BookingHealth(backlog=150, reserve_latency_ms=20)
    assert _next(300, between) == 300


def test_auto_mode_never_admits_more_fans_than_seats_left():
    assert _next(600, CALM, Inventory(0, 5, 0)) == 0  # only held seats: wait for them
    assert _next(600, CALM, Inventory(10, 0, 0), active=10) == 0
    assert _next(600, CALM, Inventory(12, 0, 0), active=10) == 12  # 6 a minute per spare seat
    assert _next(0, CALM, PLENTY, ceiling=0) == 0


def test_random_sequences_of_health_stay_within_bounds():
    rng = random.Random(4)
    rate = auto_start_rate(300)
    for _ in range(500):
        health = rng.choice([CALM, BUSY, SLOW, BookingHealth(None, None)])
        rate = _next(rate, health, ceiling=300)
        assert 6 <= rate <= 300


def test_an_order_checked_in_pieces_gives_the_digest_of_the_whole():
    refs = [member_ref(KEY, 7, f"fan-{i}") for i in range(50)]
    order = draw_order(SEED, refs)
    check = OrderCheck(SEED)
    for start in range(0, len(order), 7):
        check.feed(order[start : start + 7])
    assert check.in_order and check.count == 50
    assert check.digest() == order_digest(order)
    assert order_digest(order) == hashlib.sha256("\n".join(order).encode()).hexdigest()
    assert order_digest([]) == hashlib.sha256(b"").hexdigest()
    swapped = [order[1], order[0], *order[2:]]
    assert OrderCheck(SEED).feed(swapped).in_order is False
    assert OrderCheck(SEED).feed(order + order[-1:]).in_order is False  # a ref twice

"""The hold and payment-attempt life cycle, every state named, as a fan or the books notice
it: what a release does, whether a confirm may charge, how a paid attempt ends."""

from __future__ import annotations

import pytest

from ticketing.domain.booking_states import (
    SETTLED,
    STORED_STATUS,
    AttemptState,
    BeforeCharge,
    HoldState,
    RefundReason,
    Release,
    attempt_state,
    before_charge,
    hold_state,
    on_release,
    seats_still_free,
    settle,
)


def test_a_hold_past_its_expiry_is_lapsed_before_the_sweeper_marks_it_expired() -> None:
    assert hold_state("held", past_expiry=False) is HoldState.HELD
    assert hold_state("held", past_expiry=True) is HoldState.LAPSED
    assert hold_state("expired", past_expiry=True) is HoldState.EXPIRED
    assert hold_state("confirmed", past_expiry=True) is HoldState.CONFIRMED


@pytest.mark.parametrize(
    ("state", "release"),
    [
        (HoldState.HELD, Release.RELEASE),
        (HoldState.RELEASED, Release.ALREADY_RELEASED),
        (HoldState.CONFIRMED, Release.ALREADY_BOOKED),
        (HoldState.LAPSED, Release.EXPIRE),
        (HoldState.EXPIRED, Release.EXPIRE),
    ],
)
def test_what_releasing_a_hold_does_in_each_state(state: HoldState, release: Release) -> None:
    assert on_release(state) is release


def test_only_a_live_hold_on_sale_is_charged() -> None:
    assert before_charge(HoldState.HELD, not_on_sale=False) is BeforeCharge.CHARGE
    assert before_charge(HoldState.HELD, not_on_sale=True) is BeforeCharge.NOT_ON_SALE
    assert before_charge(HoldState.RELEASED, not_on_sale=True) is BeforeCharge.NOT_FOUND
    assert before_charge(HoldState.CONFIRMED, not_on_sale=False) is BeforeCharge.BOOKED
    assert before_charge(HoldState.LAPSED, not_on_sale=False) is BeforeCharge.EXPIRED
    assert before_charge(HoldState.EXPIRED, not_on_sale=False) is BeforeCharge.EXPIRED


def test_refund_due_is_a_succeeded_payment_with_a_reason() -> None:
    assert attempt_state("succeeded", None) is AttemptState.BOOKED
    assert attempt_state("succeeded", "seats_taken") is AttemptState.REFUND_DUE
    assert attempt_state("failed", "card_declined") is AttemptState.DECLINED
    assert attempt_state("pending", None) is AttemptState.PENDING
    assert attempt_state("refunded", "seats_taken") is AttemptState.REFUNDED
    assert STORED_STATUS[AttemptState.REFUND_DUE] == STORED_STATUS[AttemptState.BOOKED]
    assert AttemptState.PENDING not in SETTLED and AttemptState.DECLINED not in SETTLED


def test_a_paid_hold_books_its_seats_unless_they_are_gone_or_it_is_already_booked() -> None:
    assert settle(hold_already_booked=False, seats_still_free=True).state is AttemptState.BOOKED
    late = settle(hold_already_booked=False, seats_still_free=False)
    assert late.refund_due and late.reason is RefundReason.SEATS_TAKEN
    twice = settle(hold_already_booked=True, seats_still_free=True)
    assert twice.refund_due and twice.reason is RefundReason.DUPLICATE_CHARGE


def test_a_late_payment_keeps_seats_that_are_free_or_still_its_holds() -> None:
    mine, other = "hold-1", "hold-2"
    assert seats_still_free([1, 2], [(1, "available", None), (2, "reserved", mine)], mine)
    assert not seats_still_free([1, 2], [(1, "available", None), (2, "reserved", other)], mine)
    assert not seats_still_free([1, 2], [(1, "available", None)], mine)  # one is gone
    assert not seats_still_free([1], [(1, "booked", mine)], mine)
    assert not seats_still_free([], [], mine)

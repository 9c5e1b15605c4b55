"""The life of a hold and of a payment attempt, every state named, with no I/O.

A hold::

    held --release--> released
    held --expires_at passes--> (lapsed: still 'held' in the table) --sweep--> expired
    held --a payment settles and books--> confirmed

A payment attempt (one per Idempotency-Key of a confirm)::

    pending --Stripe declines--> declined
    pending --Stripe charged, seats booked--> booked
    pending --Stripe charged, but the seats are gone or the hold is already booked-->
        refund due --refund made--> refunded

The ``payments`` table stores these as ``status`` (pending, failed, succeeded, refunded)
and ``failure_code``: "refund due" is ``status = 'succeeded' AND failure_code IS NOT NULL``,
the failure code saying why (seats_taken, duplicate_charge).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class HoldState(StrEnum):
    HELD = "held"
    LAPSED = "lapsed"  # past expires_at, not swept yet: stored 'held', treated as expired
    EXPIRED = "expired"
    RELEASED = "released"
    CONFIRMED = "confirmed"


def hold_state(status: str, past_expiry: bool) -> HoldState:
    """The state of a ``holds`` row (``past_expiry``: expires_at <= now())."""
    if status == HoldState.HELD and past_expiry:
        return HoldState.LAPSED
    return HoldState(status)


class Release(Enum):
    """What a fan's release of a hold does."""

    RELEASE = "release"  # seats back to sale
    ALREADY_RELEASED = "already_released"  # 204 again, nothing to do
    ALREADY_BOOKED = "already_booked"  # 409 hold_confirmed
    EXPIRE = "expire"  # mark it expired now (kept) and answer 409 hold_expired


def on_release(state: HoldState) -> Release:
    if state is HoldState.RELEASED:
        return Release.ALREADY_RELEASED
    if state is HoldState.CONFIRMED:
        return Release.ALREADY_BOOKED
    if state in (HoldState.EXPIRED, HoldState.LAPSED):
        return Release.EXPIRE
    return Release.RELEASE


class BeforeCharge(Enum):
    """What a confirm does with the caller's hold before asking Stripe for anything."""

    CHARGE = "charge"
    NOT_FOUND = "not_found"  # released: 404 hold_not_found
    NOT_ON_SALE = "not_on_sale"  # the on-sale was moved later after the hold was made
    BOOKED = "booked"  # answer the booking (a retry after success)
    EXPIRED = "expired"  # 409 hold_expired, unless this key's attempt was declined


def before_charge(state: HoldState, not_on_sale: bool) -> BeforeCharge:
    if state is HoldState.RELEASED:
        return BeforeCharge.NOT_FOUND
    if not_on_sale:
        return BeforeCharge.NOT_ON_SALE
    if state is HoldState.CONFIRMED:
        return BeforeCharge.BOOKED
    if state is HoldState.HELD:
        return BeforeCharge.CHARGE
    return BeforeCharge.EXPIRED


class AttemptState(StrEnum):
    PENDING = "pending"
    DECLINED = "declined"
    BOOKED = "booked"
    REFUND_DUE = "refund_due"
    REFUNDED = "refunded"


# How each state is stored: (payments.status, whether failure_code is set).
STORED_STATUS = {
    AttemptState.PENDING: "pending",
    AttemptState.DECLINED: "failed",
    AttemptState.BOOKED: "succeeded",
    AttemptState.REFUND_DUE: "succeeded",
    AttemptState.REFUNDED: "refunded",
}
# Stripe took the money: the attempt is settled and never charged again.
SETTLED = frozenset({AttemptState.BOOKED, AttemptState.REFUND_DUE, AttemptState.REFUNDED})


def attempt_state(status: str, failure_code: str | None) -> AttemptState:
    """The state of a ``payments`` row."""
    if status == "succeeded":
        return AttemptState.BOOKED if failure_code is None else AttemptState.REFUND_DUE
    if status == "failed":
        return AttemptState.DECLINED
    return AttemptState(status)


class RefundReason(StrEnum):
    SEATS_TAKEN = "seats_taken"  # a late payment: the hold lapsed and its seats were sold
    DUPLICATE_CHARGE = "duplicate_charge"  # another attempt already booked the hold


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a payment Stripe reports succeeded ends: booked, or refund due and why."""

    state: AttemptState
    reason: RefundReason | None = None

    @property
    def refund_due(self) -> bool:
        return self.state is AttemptState.REFUND_DUE


def settle(hold_already_booked: bool, seats_still_free: bool) -> Settlement:
    """A succeeded payment of a hold: it books the seats when they are still the hold's or
    free (a late payment after expiry is honoured that way); otherwise it is owed back."""
    if hold_already_booked:
        return Settlement(AttemptState.REFUND_DUE, RefundReason.DUPLICATE_CHARGE)
    if seats_still_free:
        return Settlement(AttemptState.BOOKED)
    return Settlement(AttemptState.REFUND_DUE, RefundReason.SEATS_TAKEN)


def seats_still_free(
    wanted: list[int], found: list[tuple[int, str, object]], hold_id: object
) -> bool:
    """Every one of the payment's seats (``wanted`` ids) exists and is free or still this
    hold's; ``found``: (id, status, hold_id) of the seats that exist."""
    return (
        bool(wanted)
        and len(found) == len(set(wanted))
        and all(
            status == "available" or (status == "reserved" and holder == hold_id)
            for _, status, holder in found
        )
    )

"""The command dispatch table: ``command kind -> async handler(ctx, conn, command)``
(booking_worker.context says what a handler may and must do).

RESERVE has no entry: reserves are decided in groups per event, a lone one as a group of
one (booking_worker.reserve, called by booking_worker.commands). CONFIRM and STRIPE_EVENT
(``booking_worker.confirm``, ``booking_worker.stripe_events``) call Stripe, so the worker
runs each of them outside any batch transaction.
"""

from __future__ import annotations

from booking_worker import confirm, holds, queries, stripe_events
from booking_worker.context import Context, Handler, PaymentHandler, Reply
from ticketing.messages import (
    CONFIRM,
    GET_BOOKING,
    LIST_BOOKINGS,
    RELEASE,
    STRIPE_EVENT,
    TICKET_STATUS,
)

__all__ = ["READ_ONLY", "Context", "Handler", "PaymentHandler", "Reply", "build_handlers"]

# Commands that only read: run without storing a reply (nothing to make idempotent).
READ_ONLY = frozenset({TICKET_STATUS, GET_BOOKING, LIST_BOOKINGS})


def build_handlers() -> dict[str, Handler]:
    return {
        RELEASE: holds.release,
        TICKET_STATUS: queries.ticket_status,
        GET_BOOKING: queries.get_booking,
        LIST_BOOKINGS: queries.list_bookings,
        CONFIRM: confirm.handle_confirm,
        STRIPE_EVENT: stripe_events.handle_stripe_event,
    }


def build_payment_handlers() -> dict[str, PaymentHandler]:
    return {
        CONFIRM: confirm.confirm_payment,
        STRIPE_EVENT: stripe_events.stripe_event_payment,
    }

"""The command dispatch table: ``command type -> async handler(ctx, conn, command)``.

A handler is::

    async def handle_x(ctx: Context, conn: asyncpg.Connection, command: dict) -> Reply

where ``Reply`` is ``(status, body)``: the HTTP status and JSON body the front door returns
to the fan as they are (a problem document, ``Problem(...).to_dict()``, when status >= 400;
``body`` may be None for 204).

- ``conn`` is already inside a transaction (a savepoint of the batch transaction): do every
  read and write on it, never commit or open another connection for the change. The worker
  stores the reply under ``command["request_id"]`` in the same transaction, commits, and only
  then publishes the reply and acks the message; a redelivered or retried command with the
  same request_id gets the stored reply without the handler running again.
- To refuse and undo everything the handler wrote, ``raise Problem(status, code, detail,
  **extra)`` (ticketing.problems): the savepoint rolls back and the problem is the reply
  (stored too, so a retry with the same Idempotency-Key answers the same). To answer an
  error while KEEPING writes (e.g. a hold found expired and released), return
  ``(409, Problem(...).to_dict())`` instead of raising.
- Replies with status >= 500 are not stored: a retry acts again. An unexpected exception
  rolls back the savepoint, answers 500 and dead-letters the message.
- ``command`` is the envelope of ticketing.messages.booking_command: ``type``, ``v``,
  ``request_id``, ``user_id``, ``roles`` (list of str; ``"admin"`` may act on any hold),
  ``sent_at`` (epoch seconds, for latency metrics) plus the command's own fields, already
  shape-checked by the front door but re-check what you rely on.
- Every state change calls ``ticketing.db.outbox.record_event_changed(conn, event_id,
  "availability")`` on the same ``conn``.
- ``ctx.settings`` has every setting; ``ctx.resources`` holds process-wide clients a
  handler module may set up once (e.g. a Stripe client), keyed by name.

CONFIRM and STRIPE_EVENT (``booking_worker.confirm``, ``booking_worker.stripe_events``) call
Stripe, so the worker runs each of them in a transaction of its own, never in a batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ticketing.config import Settings
from ticketing.messages import (
    CONFIRM,
    GET_BOOKING,
    LIST_BOOKINGS,
    RELEASE,
    RESERVE,
    STRIPE_EVENT,
    TICKET_STATUS,
)

Reply = tuple[int, dict[str, Any] | None]


@dataclass(slots=True)
class Context:
    settings: Settings
    resources: dict[str, Any] = field(default_factory=dict)

    def is_admin(self, command: dict[str, Any]) -> bool:
        roles = command.get("roles")
        return isinstance(roles, list) and "admin" in roles


Handler = Callable[[Context, asyncpg.Connection, dict[str, Any]], Awaitable[Reply]]
# A payment command's handler works on short-lived connections of its own around the call
# to Stripe (booking_worker.payment_stage): no transaction of the caller's, no ``conn``.
PaymentHandler = Callable[[Context, dict[str, Any]], Awaitable[Reply]]

# Commands that only read: run without storing a reply (nothing to make idempotent).
READ_ONLY = frozenset({TICKET_STATUS, GET_BOOKING, LIST_BOOKINGS})


def build_handlers() -> dict[str, Handler]:
    # Imported here: those modules import Context and Reply from this one.
    from booking_worker import confirm, holds, queries, stripe_events  # noqa: PLC0415

    return {
        RESERVE: holds.reserve,
        RELEASE: holds.release,
        TICKET_STATUS: queries.ticket_status,
        GET_BOOKING: queries.get_booking,
        LIST_BOOKINGS: queries.list_bookings,
        CONFIRM: confirm.handle_confirm,
        STRIPE_EVENT: stripe_events.handle_stripe_event,
    }


def build_payment_handlers() -> dict[str, PaymentHandler]:
    from booking_worker import confirm, stripe_events  # noqa: PLC0415

    return {
        CONFIRM: confirm.confirm_payment,
        STRIPE_EVENT: stripe_events.stripe_event_payment,
    }

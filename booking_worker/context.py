"""What every handler is given and answers. Handler modules import these from here, and
the dispatch table (booking_worker.handlers) imports the handler modules: no cycle.

A handler is::

    async def handle_x(ctx: Context, conn: asyncpg.Connection, command: X) -> Reply

where ``X`` is the command's class (ticketing.messages.commands) and ``Reply`` is
``(status, body)``: the HTTP status and JSON body the front door returns to the fan as they
are (a problem document, ``Problem(...).to_dict()``, when status >= 400; ``body`` may be
None for 204).

- ``conn`` is already inside a transaction (a savepoint of the batch transaction): do every
  read and write on it, never commit or open another connection for the change. The worker
  stores the reply under ``command.request_id`` in the same transaction, commits, and only
  then publishes the reply and acks the message; a redelivered or retried command with the
  same request_id gets the stored reply without the handler running again.
- To refuse and undo everything the handler wrote, ``raise Problem(status, code, detail,
  **extra)`` (ticketing.problems): the savepoint rolls back and the problem is the reply
  (stored too, so a retry with the same Idempotency-Key answers the same). To answer an
  error while KEEPING writes (e.g. a hold found expired and released), return
  ``(409, Problem(...).to_dict())`` instead of raising.
- Replies with status >= 500 are not stored: a retry acts again. An unexpected exception
  rolls back the savepoint, answers 500 and dead-letters the message.
- The command's fields have their wire types (ticketing.messages); re-check the values you
  rely on (ids in range, a hold id that is a UUID) and answer as the API says.
- Every state change calls ``ticketing.db.outbox.record_event_changed(conn, event_id,
  "availability")`` on the same ``conn``.
- ``ctx.settings`` has every setting; ``ctx.resources`` holds process-wide clients a
  handler module may set up once (e.g. a Stripe client), keyed by name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ticketing.config import Settings

Reply = tuple[int, dict[str, Any] | None]
# What statements run on: a connection, or the pool's proxy that forwards to one.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


def as_connection(conn: Connection) -> asyncpg.Connection:
    """For a callee typed to take a Connection: the proxy forwards every method to one."""
    return cast("asyncpg.Connection", conn)


@dataclass(slots=True)
class Context:
    settings: Settings
    resources: dict[str, Any] = field(default_factory=dict)


# Each kind's handler takes that kind's command class; the table is keyed by kind.
Handler = Callable[[Context, Connection, Any], Awaitable[Reply]]
# A payment command's handler works on short-lived connections of its own around the call
# to Stripe (booking_worker.payment_stage): no transaction of the caller's, no ``conn``.
PaymentHandler = Callable[[Context, Any], Awaitable[Reply]]

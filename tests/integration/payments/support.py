"""Plain helpers of the payment tests: the waitingroom with a booking worker of its own,
holds and events written straight to the database, charges nobody recorded, a confirm
command for a hold, Stripe events, and what the worker's counters, the tickets, the payment
attempts and localstripe show afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from tests.integration.booking.support import open_client, running_worker
from tests.integration.payments.localstripe import LocalStripe
from tests.support import eventually
from ticketing.config import Settings
from ticketing.messages import Confirm
from ticketing.payments import Payments, intent_metadata

WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex


@contextlib.asynccontextmanager
async def booking_stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    """The waitingroom app and one in-process booking worker, both with ``settings`` (give
    them a vhost of their own, so no other test's worker answers)."""
    async with running_worker(settings, pool):
        client = await open_client(settings)
        try:
            yield client
        finally:
            await client.close()


@dataclass
class HeldSeats:
    hold_id: uuid.UUID
    event_id: int
    user_id: str
    ticket_ids: list[int]


async def seed_event(conn: asyncpg.Connection, seats: int = 4, price_cents: int = 2500) -> int:
    venue = await conn.fetchval(
        "INSERT INTO venues (name, city, lat, lon, seat_map, capacity)"
        " VALUES ('Pay Hall', 'Lyon', 45.7, 4.8, '{}'::jsonb, $1) RETURNING id",
        seats,
    )
    performer = await conn.fetchval(
        "INSERT INTO performers (name) VALUES ('The Payers') RETURNING id"
    )
    event = await conn.fetchval(
        "INSERT INTO events (name, starts_at, venue_id, performer_id, currency)"
        " VALUES ('Pay Night', now() + interval '30 days', $1, $2, 'EUR') RETURNING id",
        venue,
        performer,
    )
    await conn.executemany(
        'INSERT INTO tickets (event_id, section, "row", number, price_cents)'
        " VALUES ($1, 'A', '1', $2, $3)",
        [(event, n, price_cents) for n in range(1, seats + 1)],
    )
    return event


async def hold_seats(
    conn: asyncpg.Connection, event_id: int, user_id: str, count: int = 2, ttl: int = 600
) -> HeldSeats:
    """A hold as the reserve path leaves it: tickets reserved, hold 'held' until expiry."""
    hold_id = uuid.uuid4()
    async with conn.transaction():
        ids = await conn.fetch(
            "SELECT id, price_cents FROM tickets WHERE event_id = $1 AND status = 'available'"
            " ORDER BY id LIMIT $2",
            event_id,
            count,
        )
        await conn.execute(
            "INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,"
            " expires_at) VALUES ($1, $2, $3, 'held', $4, 'EUR',"
            " now() + make_interval(secs => $5))",
            hold_id,
            event_id,
            user_id,
            sum(r["price_cents"] for r in ids),
            float(ttl),
        )
        await conn.execute(
            "UPDATE tickets SET status = 'reserved', hold_id = $1 WHERE id = ANY($2::bigint[])",
            hold_id,
            [r["id"] for r in ids],
        )
    return HeldSeats(hold_id, event_id, user_id, [r["id"] for r in ids])


async def charge_unrecorded(
    pool: asyncpg.Pool,
    payments: Payments,
    hold_id: uuid.UUID | str,
    ticket_ids: list[int],
    amount_cents: int,
    payment_method: str,
) -> uuid.UUID:
    """A confirm that reached Stripe and never heard back (a crash, a lost answer): a
    'pending' attempt of ours, and a PaymentIntent in Stripe naming it, charged or declined
    as ``payment_method`` says. Returns the attempt id."""
    attempt_id = uuid.uuid4()
    key = f"confirm:{hold_id}:unrecorded-{attempt_id}"
    await pool.execute(
        "INSERT INTO payments (id, hold_id, idempotency_key, amount_cents, currency, status)"
        " VALUES ($1, $2, $3, $4, 'EUR', 'pending')",
        attempt_id,
        uuid.UUID(str(hold_id)),
        key,
        amount_cents,
    )
    await payments.charge(
        idempotency_key=key,
        amount_cents=amount_cents,
        currency="EUR",
        payment_method=payment_method,
        metadata=intent_metadata(str(hold_id), str(attempt_id), ticket_ids),
    )
    return attempt_id


def confirm_command(held: HeldSeats, pm: str, request_id: str | None = None, **kw: Any) -> Confirm:
    fields = {"user_id": held.user_id, "hold_id": str(held.hold_id), **kw}
    return Confirm(request_id=request_id or uuid.uuid4().hex, payment_method=pm, **fields)


async def ticket_states(pool: asyncpg.Pool, ids: list[int]) -> list[str]:
    rows = await pool.fetch("SELECT status FROM tickets WHERE id = ANY($1) ORDER BY id", ids)
    return [str(r["status"]) for r in rows]


async def payment_rows(pool: asyncpg.Pool, hold_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM payments WHERE hold_id = $1 ORDER BY created_at", hold_id
    )


def stripe_event(kind: str, intent: dict) -> dict:
    """A Stripe event about ``intent``, as Stripe delivers it to a webhook."""
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": intent},
    }


async def expire_hold(conn: asyncpg.Connection, hold_id: uuid.UUID) -> None:
    """What the sweeper does to a hold past its expiry: seats back on sale."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE holds SET status = 'expired', expires_at = now() - interval '1 second'"
            " WHERE id = $1",
            hold_id,
        )
        await conn.execute(
            "UPDATE tickets SET status = 'available', hold_id = NULL WHERE hold_id = $1",
            hold_id,
        )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counters:
    """The worker's payment counters now, to compare with later (the registry is the
    process's, shared with every in-process worker of the run)."""

    NAMES: ClassVar[dict[str, tuple[str, dict[str, str]]]] = {
        "paid": ("booking_payments_total", {"result": "succeeded"}),
        "declined": ("booking_payments_total", {"result": "declined"}),
        "confirmed": ("booking_confirm_outcomes_total", {"outcome": "confirmed"}),
        "payment_failed": ("booking_confirm_outcomes_total", {"outcome": "payment_failed"}),
        "hold_not_found": ("booking_confirm_outcomes_total", {"outcome": "hold_not_found"}),
        "not_your_hold": ("booking_confirm_outcomes_total", {"outcome": "not_your_hold"}),
        "refunded": ("booking_refunds_total", {"reason": "seats_taken"}),
        "event_applied": (
            "booking_stripe_events_total",
            {"type": "payment_intent.succeeded", "result": "applied"},
        ),
        "event_duplicate": (
            "booking_stripe_events_total",
            {"type": "payment_intent.succeeded", "result": "duplicate"},
        ),
    }

    def __init__(self) -> None:
        self.start = {k: metric(n, **labels) for k, (n, labels) in self.NAMES.items()}

    def moved(self) -> dict[str, float]:
        now = {k: metric(n, **labels) for k, (n, labels) in self.NAMES.items()}
        return {k: now[k] - self.start[k] for k in now if now[k] != self.start[k]}


async def settled_intents(localstripe: LocalStripe, hold_id: str) -> list[dict]:
    intents = await asyncio.to_thread(localstripe.intents_for_hold, hold_id)
    return [pi for pi in intents if pi["status"] == "succeeded"]


async def ticket_rows(pool: asyncpg.Pool, ids: list[int]) -> list[tuple[str, Any]]:
    rows = await pool.fetch(
        "SELECT status::text, booking_id FROM tickets WHERE id = ANY($1) ORDER BY id", ids
    )
    return [(r["status"], r["booking_id"]) for r in rows]


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def charging(pool: asyncpg.Pool, hold_ids: list[str], timeout: float = 10) -> None:
    """Until each hold has a 'pending' payment attempt: the worker recorded it and went on
    to charge, so its confirm is with Stripe."""
    ids = [uuid.UUID(h) for h in hold_ids]

    async def pending() -> int:
        return await pool.fetchval(
            "SELECT count(DISTINCT hold_id) FROM payments"
            " WHERE hold_id = ANY($1::uuid[]) AND status = 'pending'",
            ids,
        )

    await eventually(pending, lambda n: n == len(ids), timeout, "the confirms to reach Stripe")

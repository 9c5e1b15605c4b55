"""Fixtures of the payment tests (localstripe itself, and the network to it, are in
tests/integration/conftest.py: booking and queue stories pay too): a module's own RabbitMQ
vhost, and for the tests that call the confirm and Stripe-event handlers directly, a
Payments client, a worker's attempt locks, and a fresh hold of two seats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from booking_worker.attempt_locks import AttemptLocks
from tests.integration.booking.support import own_vhost
from tests.integration.payments.support import HeldSeats, hold_seats, seed_event
from ticketing.config import Settings
from ticketing.payments import Payments


@pytest.fixture(scope="module")
def e2e_amqp(booking_settings: Settings) -> Iterator[str]:
    """A vhost of this module's own: only the module's worker (with Stripe settings) consumes."""
    yield from own_vhost(booking_settings.amqp_url)


@pytest.fixture(scope="module")
async def payments(payment_settings: Settings) -> AsyncIterator[Payments]:
    client = Payments(payment_settings)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def locks(payment_settings: Settings) -> AsyncIterator[AttemptLocks]:
    """This test process's attempt locks, as a worker process has one set."""
    locks = AttemptLocks(payment_settings.database_url)
    yield locks
    await locks.close()


@pytest.fixture
async def held(pool: asyncpg.Pool) -> HeldSeats:
    async with pool.acquire() as conn:
        event_id = await seed_event(conn)
        return await hold_seats(conn, event_id, "fan-" + uuid.uuid4().hex[:8])

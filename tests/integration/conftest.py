"""Fixtures every integration area shares: the booking settings and database pool, the
in-process booking worker and the waitingroom app in front of it (``client``; the catalog
area has an app of its own under the same name), booking worker processes, a RabbitMQ vhost
of a test's own, the queue's settings, and localstripe (one for the run, or one of a
module's own behind a network the test can break).

Plain helpers live in each area's ``support`` module; an area's own fixtures in its
``conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import (
    WorkerProcesses,
    open_client,
    own_vhost,
    running_worker,
)
from tests.integration.payments.localstripe import LocalStripe, StripeLink
from tests.integration.payments.support import WEBHOOK_SECRET
from tests.support import settings_with
from ticketing.config import Settings


@pytest.fixture(scope="session")
def booking_settings(settings: Settings) -> Settings:
    return settings_with(settings, env="test", booking_rpc_timeout_seconds=10.0)


@pytest.fixture(scope="session")
async def pool(booking_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(booking_settings.database_url, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def worker(booking_settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """One in-process booking worker for the whole session."""
    async with running_worker(booking_settings, pool):
        yield


@pytest.fixture
async def client(booking_settings: Settings, worker: None) -> AsyncIterator[TestClient]:
    client = await open_client(booking_settings)
    yield client
    await client.close()


@pytest.fixture
def worker_processes(booking_settings: Settings) -> Iterator[list[WorkerProcesses]]:
    started: list[WorkerProcesses] = []
    yield started
    for group in started:
        group.stop()


@pytest.fixture
def isolated_amqp(booking_settings: Settings) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own, so only the workers it starts consume."""
    yield from own_vhost(booking_settings.amqp_url)


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_localstripe() -> Iterator[LocalStripe]:
    """A localstripe of one module's own. Finding an attempt's intent by listing (crash
    recovery) reads the newest PaymentIntents, as Stripe lists them, 100 a page: a module
    relying on it starts its own, from scratch, so no other module's intents crowd it."""
    server = LocalStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def link(own_localstripe: LocalStripe) -> AsyncIterator[StripeLink]:
    """The network to a module's own localstripe, up unless a test breaks it."""
    link = StripeLink(own_localstripe)
    await link.set("up")
    yield link
    await link.set("down")


@pytest.fixture
async def stripe_back(link: StripeLink) -> AsyncIterator[None]:
    """A test starts and ends with Stripe reachable (a module uses it for every test)."""
    await link.set("up")
    yield
    await link.set("up")


@pytest.fixture(scope="session")
def payment_settings(settings: Settings, localstripe: LocalStripe) -> Settings:
    return settings_with(
        settings, stripe_api_base=localstripe.url, stripe_webhook_secret=WEBHOOK_SECRET
    )


@pytest.fixture(scope="session")
def queue_settings(booking_settings: Settings) -> Settings:
    # Tests poll far faster than a fan may; the limits have a test of their own. Fans are
    # not dropped for silence unless a test asks for it.
    return settings_with(
        booking_settings,
        queue_user_rate_per_minute=1_000_000,
        queue_ip_rate_per_minute=1_000_000,
        queue_abandon_seconds=600,
        queue_admit_per_minute=60,
        queue_max_active=500,
    )


@pytest.fixture
def paying_queue_settings(
    queue_settings: Settings, payment_settings: Settings, isolated_amqp: str
) -> Settings:
    """The queue's settings with localstripe's and a RabbitMQ vhost of the test's own, for a
    ``booking_stack`` whose worker takes payments."""
    return settings_with(
        queue_settings,
        stripe_api_base=payment_settings.stripe_api_base,
        stripe_webhook_secret=payment_settings.stripe_webhook_secret,
        amqp_url=isolated_amqp,
    )

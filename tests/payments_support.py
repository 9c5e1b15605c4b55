"""A real localstripe server for the payment tests, a network to it that a test can break,
and a hold to pay for.

localstripe runs as make run runs it (deploy/localstripe_server.py), with its state file in a
directory of its own and no simulated latency; one server serves the whole run, and tests
tell their PaymentIntents apart by the hold id in the metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from booking_worker.worker import BookingWorker
from tests.integration.test_booking_support import open_client
from tests.support import free_port, settings_with, wait_until
from ticketing.config import Settings
from ticketing.payments import Payments, intent_metadata

ROOT = Path(__file__).resolve().parents[1]
WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/v1/payment_intents", timeout=0.5)
        except urllib.error.HTTPError:
            return True  # 401 without a key: it is up
        except OSError:
            return False
        return True

    def start(self) -> None:
        self._state_dir = tempfile.TemporaryDirectory(prefix="localstripe-")
        env = {
            **os.environ,
            "TICKETING_LOCALSTRIPE_STATE": str(Path(self._state_dir.name) / "state.pickle"),
            "TICKETING_STRIPE_LATENCY_MS": "0",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy.localstripe_server",
                "--port",
                str(self.port),
                "--from-scratch",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 30, "localstripe to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        if self._state_dir is not None:
            self._state_dir.cleanup()
            self._state_dir = None

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        body = json.dumps({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(
            f"{self.url}/_config/webhooks/{name}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()

    def _intents(self) -> list[dict]:
        request = urllib.request.Request(
            self.url + "/v1/payment_intents?limit=100",
            headers={"Authorization": "Bearer sk_test_x"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read())["data"]

    def intents_for_hold(self, hold_id: uuid.UUID | str) -> list[dict]:
        return [pi for pi in self._intents() if pi["metadata"].get("hold_id") == str(hold_id)]

    def intent_for_attempt(self, attempt_id: uuid.UUID | str) -> dict:
        """The PaymentIntent of one payment attempt, as Stripe shows it (and sends it in
        its events)."""
        [intent] = [
            pi for pi in self._intents() if pi["metadata"].get("attempt_id") == str(attempt_id)
        ]
        return intent


class StripeLink:
    """The network between a booking worker and localstripe, as a test wants it: a TCP hop
    that forwards (``up``), refuses connections like a stopped server (``down``), accepts
    and never answers like a network that swallows packets (``silent``), or passes the
    request on and holds Stripe's answer back for ``delay`` seconds (``late``: Stripe
    acted, the caller stopped listening first). localstripe itself keeps running, so what
    it charged during an outage can still be counted."""

    MODES = ("up", "down", "silent", "late")

    def __init__(self, upstream: LocalStripe) -> None:
        self.upstream_port = upstream.port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "down"
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def set(self, mode: str, delay: float = 0.0) -> None:
        """Switch the network; connections already open are cut, as by a real outage."""
        assert mode in self.MODES, mode
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if mode == "down" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "down" and self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.mode, self.delay = mode, delay

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self.mode == "silent":
                while await reader.read(65536):  # swallowed until the caller gives up
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            try:
                pumps = {
                    asyncio.create_task(_pump(reader, up_writer, 0.0)),
                    asyncio.create_task(_pump(up_reader, writer, self.delay)),
                }
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                up_writer.close()
                with contextlib.suppress(OSError):
                    await up_writer.wait_closed()
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()


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


@contextlib.asynccontextmanager
async def booking_stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    """The waitingroom app and one in-process booking worker, both with ``settings`` (give
    them a vhost of their own, so no other test's worker answers)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(BookingWorker(settings, pool).run(stop))
    client = await open_client(settings)
    try:
        yield client
    finally:
        await client.close()
        stop.set()
        await asyncio.wait_for(worker, 20)


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

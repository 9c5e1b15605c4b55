"""A real localstripe server for the payment tests, and a hold to pay for.

localstripe keeps everything in memory, so one server serves the whole run; tests tell
their PaymentIntents apart by the hold id in the metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.support import free_port, settings_with, wait_until
from ticketing.config import Settings

LOCALSTRIPE = Path(sys.executable).with_name("localstripe")
WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/v1/payment_intents", timeout=0.5)
        except urllib.error.HTTPError:
            return True  # 401 without a key: it is up
        except OSError:
            return False
        return True

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(LOCALSTRIPE), "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 30, "localstripe to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        body = json.dumps({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(
            f"{self.url}/_config/webhooks/{name}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()

    def intents_for_hold(self, hold_id: uuid.UUID | str) -> list[dict]:
        request = urllib.request.Request(
            self.url + "/v1/payment_intents?limit=100",
            headers={"Authorization": "Bearer sk_test_x"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.loads(resp.read())["data"]
        return [pi for pi in data if pi["metadata"].get("hold_id") == str(hold_id)]


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def payment_settings(settings: Settings, localstripe: LocalStripe) -> Settings:
    return settings_with(
        settings, stripe_api_base=localstripe.url, stripe_webhook_secret=WEBHOOK_SECRET
    )


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
        venue, performer,
    )
    await conn.executemany(
        "INSERT INTO tickets (event_id, section, \"row\", number, price_cents)"
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
            event_id, count,
        )
        await conn.execute(
            "INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency,"
            " expires_at) VALUES ($1, $2, $3, 'held', $4, 'EUR',"
            " now() + make_interval(secs => $5))",
            hold_id, event_id, user_id, sum(r["price_cents"] for r in ids), float(ttl),
        )
        await conn.execute(
            "UPDATE tickets SET status = 'reserved', hold_id = $1 WHERE id = ANY($2::bigint[])",
            hold_id, [r["id"] for r in ids],
        )
    return HeldSeats(hold_id, event_id, user_id, [r["id"] for r in ids])


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

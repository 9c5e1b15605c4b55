"""Fixtures for the waiting-room tests (a pytest plugin each test_queue_* module names):
queue-enabled events with seats of their own, the waitingroom app with its admitter, and
the calls a fan and an operator make."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.test_booking_support import call, make_event, open_client, settings_env
from tests.support import auth_header, eventually, free_port, settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section

SEATS = [Section("Floor", 2, 10, 5000)]


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
    """The queue's settings with localstripe's (the module imports ``payment_settings``
    from tests.payments_support) and a RabbitMQ vhost of the test's own, for a
    ``booking_stack`` whose worker takes payments."""
    return settings_with(
        queue_settings,
        stripe_api_base=payment_settings.stripe_api_base,
        stripe_webhook_secret=payment_settings.stripe_webhook_secret,
        amqp_url=isolated_amqp,
    )


async def queue_event(
    pool: asyncpg.Pool,
    sections: list[Section] | None = None,
    *,
    on_sale_in: float = -60,
) -> int:
    """A queue-enabled event going on sale ``on_sale_in`` seconds from now."""
    event_id = await make_event(pool, sections or SEATS, queue_enabled=True)
    await pool.execute(
        "UPDATE events SET on_sale_at = now() + make_interval(secs => $2) WHERE id = $1",
        event_id,
        float(on_sale_in),
    )
    return event_id


@pytest.fixture
async def qclient(queue_settings: Settings, worker: None) -> AsyncIterator[TestClient]:
    client = await open_client(queue_settings)
    yield client
    await client.close()


def admin(settings: Settings) -> dict[str, str]:
    return auth_header(settings, "ops", ["admin"])


async def join(
    client: TestClient, settings: Settings, user: str, event_id: int, body: Any = None
) -> tuple[int, Any]:
    status, answer, _ = await call(
        client, "POST", f"/queue/{event_id}/join", auth_header(settings, user), body
    )
    return status, answer


async def queue_status(
    client: TestClient, settings: Settings, user: str, event_id: int
) -> tuple[int, Any]:
    status, answer, _ = await call(
        client, "GET", f"/queue/{event_id}/status", auth_header(settings, user)
    )
    return status, answer


async def get_queue(client: TestClient, settings: Settings, event_id: int) -> dict[str, Any]:
    status, body, _ = await call(client, "GET", f"/admin/queues/{event_id}", admin(settings))
    assert status == 200, body
    return body


async def patch_queue(
    client: TestClient, settings: Settings, event_id: int, **fields: Any
) -> dict[str, Any]:
    status, body, _ = await call(
        client, "PATCH", f"/admin/queues/{event_id}", admin(settings), fields
    )
    assert status == 200, body
    return body


async def wait_status(
    client: TestClient,
    settings: Settings,
    user: str,
    event_id: int,
    wanted: str,
    timeout: float = 10,
) -> dict[str, Any]:
    async def probe() -> tuple[int, Any]:
        return await queue_status(client, settings, user, event_id)

    _, body = await eventually(
        probe, lambda r: r[0] == 200 and r[1]["status"] == wanted, timeout, f"{user} {wanted}"
    )
    return body


async def in_snapshot(client: TestClient, settings: Settings, event_id: int) -> None:
    """Until the admitters tick this event (it is in the once-a-second inventory count)."""

    async def listed() -> list[int]:
        _, body, _ = await call(client, "GET", "/admin/queues", admin(settings))
        return [item["event_id"] for item in body["items"]]

    await eventually(listed, lambda ids: event_id in ids, 10, f"event {event_id} counted")


class WaitingroomProcesses:
    """Real ``python -m waitingroom`` processes with the test run's settings."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.env = {**os.environ, **settings_env(settings), **queue_env(settings), **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            port = free_port()
            self.ports.append(port)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "waitingroom"],
                    env={**self.env, "TICKETING_WAITINGROOM_PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    async def stop(self) -> list[int]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        codes = []
        for proc in self.procs:
            for _ in range(200):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                proc.kill()
            codes.append(proc.wait())
        return codes


def queue_env(settings: Settings) -> dict[str, str]:
    return {
        "TICKETING_QUEUE_USER_RATE_PER_MINUTE": str(settings.queue_user_rate_per_minute),
        "TICKETING_QUEUE_IP_RATE_PER_MINUTE": str(settings.queue_ip_rate_per_minute),
        "TICKETING_QUEUE_ABANDON_SECONDS": str(settings.queue_abandon_seconds),
        "TICKETING_QUEUE_ADMIT_PER_MINUTE": str(settings.queue_admit_per_minute),
        "TICKETING_QUEUE_MAX_ACTIVE": str(settings.queue_max_active),
        "TICKETING_ADMISSION_SECRET": settings.admission_secret,
        "TICKETING_QUEUE_TICKET_SECRET": settings.queue_ticket_secret,
    }

"""Plain helpers of the waiting-room tests: queue-enabled events with seats of their own,
the calls a fan and an operator make, the queue's websocket, and real ``python -m
waitingroom`` processes. The fixtures are in queue/conftest.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
import altcha
import asyncpg
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, make_event, settings_env
from tests.support import auth_header, eventually, free_port
from ticketing.config import Settings
from ticketing.domain.seating import Section
from waitingroom.queue.runtime import QUEUE_KEY

SEATS = [Section("Floor", 2, 10, 5000)]

# 1,000 seats: enough that the seats left do not limit admission where a test measures the
# rate or max_active (fans admitted but not yet holding x 2 seats stay within 1,100).
ROOMY = [Section("Field", 10, 100, 3000)]


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


def admin(settings: Settings) -> dict[str, str]:
    return auth_header(settings, "ops", ["admin"])


async def join(
    client: TestClient, settings: Settings, user: str, event_id: int, body: Any = None
) -> tuple[int, Any]:
    status, answer, _ = await call(
        client, "POST", f"/queue/{event_id}/join", auth_header(settings, user), body
    )
    return status, answer


def solve(challenge: dict[str, Any]) -> str:
    """A door's challenge solved, as the queue page's widget sends it (base64)."""
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=30)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


async def join_many(client, settings, event: int, users: list[str]) -> None:
    for start in range(0, len(users), 50):
        answers = await asyncio.gather(
            *(join(client, settings, user, event) for user in users[start : start + 50])
        )
        assert {status for status, _ in answers} == {200}, answers


async def queue_status(
    client: TestClient, settings: Settings, user: str, event_id: int
) -> tuple[int, Any]:
    status, answer, _ = await call(
        client, "GET", f"/queue/{event_id}/status", auth_header(settings, user)
    )
    return status, answer


async def reserve(client, settings, user: str, event: int, token: str, quantity: int):
    headers = {**auth_header(settings, user), "X-Admission-Token": token}
    status, body, _ = await call(
        client, "POST", "/booking/reserve", headers, {"event_id": event, "quantity": quantity}
    )
    return status, body


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


async def socket_path(client: TestClient, settings: Settings, user: str, event: int) -> str:
    """The websocket's path with a fresh single-use ticket of ``user``'s (who has joined:
    the ticket route answers 404 otherwise)."""
    status, body, _ = await call(
        client, "POST", f"/queue/{event}/ws-ticket", auth_header(settings, user)
    )
    assert status == 200, body
    return f"/queue/{event}/ws?ticket={body['ticket']}"


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type == WSMsgType.TEXT, message
    return message.json()


async def until(ws, wanted, timeout: float) -> tuple[dict[str, Any], float]:
    """The first message ``wanted`` accepts, and how long it took to come."""
    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        assert left > 0, f"no matching message within {timeout}s"
        message = await receive(ws, left)
        if wanted(message):
            return message, time.monotonic() - started


async def lose_the_queue(client: TestClient, event: int) -> None:
    """Every Redis key of the event's queue gone, as after a restart without persistence
    (only this event's keys under this run's prefix: the shared Redis holds other runs')."""
    store = client.app[QUEUE_KEY].store
    keys = [key async for key in store.redis.scan_iter(match=store.key(event, "*"), count=1000)]
    assert keys
    await store.redis.delete(*keys)
    assert await store.epoch(event) == ""
    assert not await store.redis.exists(store.key(event, "config"))


async def admitted_fan(
    client: TestClient, settings: Settings, pool: asyncpg.Pool, user: str
) -> tuple[int, dict[str, Any]]:
    """A fresh event with ``user`` admitted: (event, their admitted status answer)."""
    event = await queue_event(pool)
    await in_snapshot(client, settings, event)
    await patch_queue(client, settings, event, admit_per_minute=6000, session_seconds=600)
    status, _ = await join(client, settings, user, event)
    assert status == 200
    return event, await wait_status(client, settings, user, event, "admitted")

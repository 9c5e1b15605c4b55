"""Plain helpers of the booking stories (the queue and payment stories use them too): an
event with seats of its own, the waitingroom app, a call to it, booking workers as real
``python -m booking_worker`` processes, a RabbitMQ vhost of a fixture's own, and an audit
of seats given twice. The fixtures are in tests/integration/conftest.py (and the booking
routes' event in booking/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer, get_port_socket

from booking_worker.worker import BookingWorker
from tests.servers import VHOSTS
from tests.support import auth_header, free_port
from ticketing.config import Settings
from ticketing.domain.seating import Section, ticket_records
from waitingroom.app import create_app
from waitingroom.booking.commands import RPC_KEY

_names = itertools.count()
SocketFactory = Callable[[str, int, socket.AddressFamily], socket.socket]

# The booking routes' event (booking/conftest.py): two Floor rows of 5, a Balcony row of 4.
SMALL = [Section("Floor", 2, 5, 12000), Section("Balcony", 1, 4, 6500)]


async def make_event(
    pool: asyncpg.Pool, sections: list[Section], *, queue_enabled: bool = False
) -> int:
    """An on-sale event with a fresh venue; its tickets are ids in seat-map order."""
    n = next(_names)
    async with pool.acquire() as conn, conn.transaction():
        seat_map = json.dumps({"sections": [sec.to_json() for sec in sections]})
        venue = await conn.fetchval(
            """INSERT INTO venues (name, city, lat, lon, seat_map, capacity)
               VALUES ($1, 'Testville', 52.5, 13.4, $2::jsonb, $3) RETURNING id""",
            f"Booking Hall {n}",
            seat_map,
            sum(sec.capacity for sec in sections),
        )
        performer = await conn.fetchval(
            "INSERT INTO performers (name) VALUES ($1) RETURNING id", f"Booking Band {n}"
        )
        event_id = await conn.fetchval(
            """INSERT INTO events (name, starts_at, venue_id, performer_id, queue_enabled,
                                   currency)
               VALUES ($1, now() + interval '30 days', $2, $3, $4, 'EUR') RETURNING id""",
            f"Booking Night {n}",
            venue,
            performer,
            queue_enabled,
        )
        await conn.copy_records_to_table(
            "tickets",
            records=list(ticket_records(event_id, sections)),
            columns=["event_id", "section", "row", "number", "price_cents"],
        )
    return event_id


async def ticket_ids(pool: asyncpg.Pool, event_id: int) -> list[int]:
    rows = await pool.fetch("SELECT id FROM tickets WHERE event_id = $1 ORDER BY id", event_id)
    return [r["id"] for r in rows]


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """One in-process booking worker with ``settings`` until the block ends (then stopped,
    its batch in hand finished)."""
    stop = asyncio.Event()
    task = asyncio.create_task(BookingWorker(settings, pool).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def open_client(
    settings: Settings, socket_factory: SocketFactory = get_port_socket
) -> TestClient:
    client = TestClient(TestServer(create_app(settings), socket_factory=socket_factory))
    await client.start_server()
    await asyncio.wait_for(client.app[RPC_KEY].connected.wait(), 10)
    return client


def fan(settings: Settings, name: str, roles: list[str] | None = None) -> dict[str, str]:
    return auth_header(settings, name, roles)


async def call(
    client: TestClient, method: str, path: str, headers: dict, body: Any = None
) -> tuple[int, Any, Any]:
    async with client.request(method, path, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data, resp.headers


class WorkerProcesses:
    """Real ``python -m booking_worker`` processes with the test run's settings (or of
    another entry point ``module``, such as the race test's unsafe control)."""

    def __init__(self, settings: Settings, module: str = "booking_worker", **env: str) -> None:
        self.env = {**os.environ, **settings_env(settings), **env}
        self.module = module
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            env = {**self.env, "TICKETING_BOOKING_WORKER_METRICS_PORT": str(free_port())}
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", self.module],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(10)

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "TICKETING_ENV": settings.env,
        "TICKETING_DATABASE_URL": settings.database_url,
        "TICKETING_REDIS_URL": settings.redis_url,
        "TICKETING_REDIS_PREFIX": settings.redis_prefix,
        "TICKETING_AMQP_URL": settings.amqp_url,
        "TICKETING_JWT_SECRET": settings.jwt_secret,
        "TICKETING_HOLD_TTL_SECONDS": str(settings.hold_ttl_seconds),
        "TICKETING_MAX_TICKETS_PER_USER": str(settings.max_tickets_per_user),
        "TICKETING_BOOKING_PARTITIONS": str(settings.booking_partitions),
        "TICKETING_BOOKING_BATCH_MAX": str(settings.booking_batch_max),
        "TICKETING_SWEEP_INTERVAL_SECONDS": str(settings.sweep_interval_seconds),
        "TICKETING_HOST": "127.0.0.1",
    }


def own_vhost(amqp_url: str) -> Iterator[str]:
    """A vhost named after ``amqp_url``'s, for a fixture's own workers; removed after."""
    base, of = amqp_url.rsplit("/", 1)
    vhost = VHOSTS.take(of)
    yield f"{base}/{vhost}"
    VHOSTS.release(vhost)


async def wait_for_consumers(
    amqp_url: str, count: int, timeout: float = 30, partitions: tuple[int, ...] = (0,)
) -> None:
    """Until ``count`` workers consume each of ``partitions`` (a worker without a slot
    consumes every partition)."""
    import aio_pika

    from tests.support import eventually
    from ticketing.booking_topology import declare_topology

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        topology = await declare_topology(channel, 8, "classic")

        async def consumers() -> int:
            counts = [(await topology.queues[p].declare()).consumer_count for p in partitions]
            return min(n or 0 for n in counts)

        await eventually(consumers, lambda n: n >= count, timeout, f"{count} booking workers")
    finally:
        await connection.close()


async def audit(pool: asyncpg.Pool, event_id: int) -> list[str]:
    """Every way the database shows a seat given twice; [] when all is well."""
    problems = []
    shared = await pool.fetch(
        """SELECT t, count(*) FROM holds, unnest(ticket_ids) AS t
           WHERE event_id = $1 AND status = 'held' GROUP BY t HAVING count(*) > 1""",
        event_id,
    )
    problems += [f"ticket {r[0]} granted to {r[1]} live holds" for r in shared]
    mismatched = await pool.fetch(
        """SELECT h.id, cardinality(h.ticket_ids) AS claimed,
                  (SELECT count(*) FROM tickets t WHERE t.hold_id = h.id
                     AND t.status = 'reserved') AS actual
           FROM holds h WHERE h.event_id = $1 AND h.status = 'held'""",
        event_id,
    )
    problems += [
        f"hold {r['id']} claims {r['claimed']} tickets, the tickets say {r['actual']}"
        for r in mismatched
        if r["claimed"] != r["actual"]
    ]
    return problems

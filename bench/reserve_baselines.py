"""The reserve benchmark's two floors, measured in the same run as the end-to-end figures:

- a bare aio-pika request/reply loop: concurrent clients publish a small persistent command
  to a durable queue with publisher confirms and wait for the answer on their reply queue;
  trivial consumers (``python bench/reserve_baselines.py echo AMQP_URL QUEUE``, one process
  per booking worker the bench runs) answer through ``reply_to``/``correlation_id`` and ack
  after publishing, as a booking worker does. No database: the broker round trip alone.
- a bare Postgres hold loop: concurrent connections each run one conditional statement per
  hold (lock 1-4 free seats with SKIP LOCKED, insert the hold, reserve the seats, all or
  nothing) on an event of its own, until it is sold out. No broker, no HTTP, no cap check.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.reserve_load import Summary, summarize  # noqa: E402

RPC_QUEUE = "bench.rpc"
# About the size of a reserve command and its hold reply.
RPC_BODY = json.dumps(
    {
        "type": "booking.reserve",
        "v": 1,
        "request_id": "0" * 32,
        "user_id": "fan-000000",
        "roles": [],
        "event_id": 3,
        "quantity": 2,
        "sent_at": 0.0,
    }
).encode()
RPC_REPLY = json.dumps({"type": "booking.reply", "v": 1, "status": 201, "body": {}}).encode()


async def serve_echo(amqp_url: str, queue_name: str, prefetch: int = 64) -> None:
    """Answer every message until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(queue_name, durable=True)

        async def answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(RPC_REPLY, correlation_id=message.correlation_id),
                routing_key=message.reply_to or "",
            )
            await message.ack()

        await queue.consume(answer)
        await stop.wait()


async def rpc_loop(
    amqp_url: str, queue_name: str, clients: int, seconds: float, warmup: float = 1.0
) -> Summary:
    """Round trips of ``clients`` concurrent callers for ``seconds`` after a warm-up."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True)
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        waiting: dict[str, asyncio.Future[bytes]] = {}

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            future = waiting.pop(message.correlation_id or "", None)
            if future is not None and not future.done():
                future.set_result(message.body)

        await replies.consume(on_reply, no_ack=True)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        measure_from = time.monotonic() + warmup
        deadline = measure_from + seconds

        async def caller() -> None:
            while (now := time.monotonic()) < deadline:
                correlation_id = uuid.uuid4().hex
                waiting[correlation_id] = future = loop.create_future()
                started = time.perf_counter()
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        RPC_BODY,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        correlation_id=correlation_id,
                        reply_to=replies.name,
                        content_type="application/json",
                    ),
                    routing_key=queue_name,
                )
                await asyncio.wait_for(future, 5)
                if now >= measure_from:
                    latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(caller() for _ in range(clients)))
    return summarize(latencies, len(latencies), seconds)


# One statement, so one transaction and one round trip per hold. The CTE that locks the seats
# is evaluated once; HAVING makes it all or nothing (no hold row, no seat) when fewer than
# $2 seats are free; the foreign key from tickets to the hold is checked at the end of the
# statement, after the hold row exists. The ticket update is conditional on 'available'
# although the rows are locked: it is the same guard the worker relies on.
PG_HOLD_SQL = """
WITH picked AS (
    SELECT id, price_cents FROM tickets
    WHERE event_id = $1 AND status = 'available'
    LIMIT $2 FOR UPDATE SKIP LOCKED
), hold AS (
    INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency, request_id,
                       expires_at, ticket_ids)
    SELECT $3, $1, $4, 'held', sum(price_cents), 'EUR', $5,
           now() + interval '10 minutes', array_agg(id)
    FROM picked HAVING count(*) = $2
    RETURNING id
)
UPDATE tickets t SET status = 'reserved', hold_id = hold.id
FROM hold
WHERE t.id IN (SELECT id FROM picked) AND t.status = 'available'
RETURNING t.id
"""


async def pg_loop(
    database_url: str, event_id: int, connections: int, seconds: float, seed: int = 7
) -> tuple[Summary, int]:
    """Holds/s and latency of ``connections`` concurrent holders until the event sells out
    (or ``seconds`` pass); also returns how many seats the holds took."""
    # With only the bench's three events in the table the planner scans the whole table for
    # "available seats of this event"; with a real catalog (bench/search.py's holds 27 M
    # tickets) it uses tickets_event_status. The baseline takes the production plan.
    conns = [
        await asyncpg.connect(database_url, server_settings={"enable_seqscan": "off"})
        for _ in range(connections)
    ]
    rng = random.Random(seed)
    latencies: list[float] = []
    seats = 0
    deadline = time.monotonic() + seconds
    try:
        statement = [await c.prepare(PG_HOLD_SQL) for c in conns]

        async def holder(index: int) -> None:
            nonlocal seats
            while time.monotonic() < deadline:
                quantity = rng.randint(1, 4)
                hold_id = uuid.uuid4()
                started = time.perf_counter()
                rows = await statement[index].fetch(
                    event_id, quantity, hold_id, f"pg-{index}", str(hold_id)
                )
                latencies.append((time.perf_counter() - started) * 1000)
                seats += len(rows)
                if not rows and quantity == 1:
                    return  # sold out

        started = time.monotonic()
        await asyncio.gather(*(holder(i) for i in range(connections)))
        elapsed = time.monotonic() - started
    finally:
        for conn in conns:
            await conn.close()
    holds = await _count_holds(database_url, event_id)
    return summarize(latencies, holds, elapsed), seats


async def _count_holds(database_url: str, event_id: int) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM holds WHERE event_id = $1", event_id)
    finally:
        await conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] != ["echo"] or len(sys.argv) != 4:
        sys.exit("usage: python bench/reserve_baselines.py echo AMQP_URL QUEUE")
    asyncio.run(serve_echo(sys.argv[2], sys.argv[3]))

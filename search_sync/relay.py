"""Outbox relay: publishes committed outbox rows to RabbitMQ, in id order, at least once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` inside a transaction that stays open until
the broker has confirmed every message of the batch, and only then marked published. So two
relays never publish the same row, and a relay that dies mid-batch leaves its rows unmarked
for the next one (a duplicate at worst, which consumers tolerate).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aio_pika
import asyncpg

from search_sync.metrics import RELAYED, SERVICE
from search_sync.topology import CREATED_AT_HEADER, OUTBOX_ID_HEADER, declare_topology
from ticketing.amqp_connect import connect
from ticketing.config import Settings
from ticketing.lifecycle import Backoff, keep_running, wait_any
from ticketing.validation import rfc3339

log = logging.getLogger(__name__)

CHANNEL = "outbox"
BATCH_SIZE = 500
PRUNE_EVERY_SECONDS = 600.0

_CLAIM_SQL = """
SELECT id, topic, aggregate_id, payload::text AS payload, created_at
FROM outbox WHERE published_at IS NULL
ORDER BY id LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MARK_SQL = "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])"
# Published rows are only needed by a reindex that started less than a day ago.
_PRUNE_SQL = "DELETE FROM outbox WHERE published_at < now() - interval '1 day'"


class OutboxRelay:
    def __init__(self, settings: Settings, *, batch_size: int = BATCH_SIZE) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self._next_prune = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; reconnects to Postgres and RabbitMQ as needed."""
        await keep_running("outbox relay", lambda b: self._run_connected(stop, b), stop, SERVICE)

    async def _run_connected(self, stop: asyncio.Event, backoff: Backoff) -> None:
        wake = asyncio.Event()
        conn = await asyncpg.connect(self.settings.database_url, timeout=5)
        try:
            amqp = await connect(self.settings.amqp_url, timeout=5)
        except BaseException:
            await conn.close()
            raise
        try:
            channel = await amqp.channel(publisher_confirms=True)
            exchange = (await declare_topology(channel, self.settings.amqp_queue_type)).exchange
            # Listen before the first drain so a commit in between still wakes us.
            await conn.add_listener(CHANNEL, lambda *_: wake.set())
            log.info("outbox relay started")
            while not stop.is_set():
                wake.clear()
                published = await self.drain(conn, exchange)
                backoff.reset()
                if published:
                    log.info("outbox relay published %d rows", published)
                await self._maybe_prune(conn)
                # The poll is the safety net for a lost notification (e.g. after a reconnect).
                await wait_any(stop, wake, seconds=self.settings.outbox_poll_seconds)
        finally:
            await amqp.close()
            await conn.close(timeout=5)
            log.info("outbox relay stopped")

    async def drain(self, conn: asyncpg.Connection, exchange: aio_pika.abc.AbstractExchange) -> int:
        """Publish every unpublished row this relay can claim; returns how many."""
        total = 0
        while True:
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM_SQL, self.batch_size)
                if not rows:
                    return total
                # One channel keeps publish order; waiting for all confirms at once avoids
                # a broker round trip per row.
                await asyncio.gather(*(self._publish(exchange, row) for row in rows))
                await conn.execute(_MARK_SQL, [row["id"] for row in rows])
            RELAYED.inc(len(rows))
            total += len(rows)
            if len(rows) < self.batch_size:
                return total

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: asyncpg.Record) -> None:
        message = aio_pika.Message(
            row["payload"].encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(row["id"]),
            timestamp=row["created_at"],
            headers={
                OUTBOX_ID_HEADER: row["id"],
                CREATED_AT_HEADER: rfc3339(row["created_at"]),
            },
        )
        await exchange.publish(message, routing_key=row["topic"])

    async def _maybe_prune(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_SECONDS
        status = await conn.execute(_PRUNE_SQL)
        log.info("outbox relay pruned published rows: %s", status)

"""How the booking path is doing, for auto mode: the backlog of booking commands in
RabbitMQ and the reserve latency the front door measures.

Every process times its own ``POST /booking/reserve`` calls (told through the queue's
port) and reports a recent average to Redis each second; the process holding the
counting lease merges the reports and asks RabbitMQ how many commands wait in the
booking queues.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque

from aio_pika.abc import AbstractChannel, AbstractConnection
from aiohttp import web

from ticketing.amqp_connect import connect
from ticketing.domain.queue import BookingHealth
from ticketing.messages import BOOKING_QUEUE_PREFIX
from ticketing.redis_connect import RedisClient

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.booking_health")

LATENCY_WINDOW_SECONDS = 10.0
# A report older than this is from a process that stopped or lost Redis; ignore it.
REPORT_FRESH_SECONDS = 5.0
REPORT_FORGET_SECONDS = 60.0


class ReserveLatency:
    """This process's reserve timings over the last few seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()

    def record(self, seconds: float) -> None:
        self._samples.append((time.monotonic(), seconds))

    def average(self) -> tuple[float, int]:
        """(average ms, count) over the window."""
        cutoff = time.monotonic() - LATENCY_WINDOW_SECONDS
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()
        if not self._samples:
            return 0.0, 0
        total = sum(seconds for _, seconds in self._samples)
        return total * 1000 / len(self._samples), len(self._samples)


RESERVE_LATENCY_KEY = web.AppKey("reserve_latency", ReserveLatency)


class LatencyReports:
    """Per-process averages shared through one Redis hash."""

    def __init__(self, redis: RedisClient, prefix: str, process: str) -> None:
        self.redis = redis
        self.key = prefix + "queue:reserve_latency"
        self.process = process

    async def report(self, latency: ReserveLatency) -> None:
        average, count = latency.average()
        value = json.dumps({"avg_ms": average, "count": count, "at": time.time()})
        await self.redis.hset(self.key, self.process, value)

    async def merged(self) -> float | None:
        """The average reserve latency across processes (weighted by calls), or None when
        no process served a reserve lately."""
        now = time.time()
        reports = await self.redis.hgetall(self.key)
        total = weight = 0.0
        stale = []
        for field, raw in reports.items():
            report = json.loads(raw)
            age = now - report["at"]
            if age > REPORT_FORGET_SECONDS:
                stale.append(field)
            elif age <= REPORT_FRESH_SECONDS and report["count"]:
                total += report["avg_ms"] * report["count"]
                weight += report["count"]
        if stale:
            await self.redis.hdel(self.key, *stale)
        return total / weight if weight else None


class BrokerBacklog:
    """Commands waiting in the booking queues, asked of RabbitMQ with passive declares."""

    def __init__(self, amqp_url: str, partitions: int) -> None:
        self.amqp_url = amqp_url
        self.partitions = partitions
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def measure(self) -> int | None:
        try:
            if self._channel is None or self._channel.is_closed:
                await self.close()
                self._connection = await connect(self.amqp_url, timeout=2)
                self._channel = await self._connection.channel()
            total = 0
            for partition in range(self.partitions):
                queue = await self._channel.declare_queue(
                    f"{BOOKING_QUEUE_PREFIX}{partition}", passive=True, timeout=2
                )
                total += queue.declaration_result.message_count or 0
            return total
        except Exception as exc:  # broker down or queues not declared yet: not measured
            log.info("booking backlog not measured: %s", exc)
            await self.close()
            return None

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


async def booking_health(backlog: BrokerBacklog, reports: LatencyReports) -> BookingHealth:
    return BookingHealth(await backlog.measure(), await reports.merged())

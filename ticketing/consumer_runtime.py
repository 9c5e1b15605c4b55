"""The consumer loop of the queue services (booking_worker, search_sync): connect with
backoff, one channel with a prefetch, batches handed to the service one at a time, and a
stop that hands back what was prefetched.

Per connection the service's ``attach`` declares its topology and subscribes its queues
(:meth:`Link.consume`, all into one buffer); the runtime then takes batches (the first
message waited for, then whatever arrives within the batch wait) and awaits ``process`` on
each before taking the next, so a batch is finished (committed, replied, acked) before the
next one starts. Stopping ends the wait for a batch and lets the one in hand finish; then
``detach`` stops the service's side work, the consumers are cancelled and every prefetched
message that was never started is requeued at once, for another consumer, before the
connection closes. A lost connection is a dependency failure: ``keep_running`` reconnects
after a backoff, and RabbitMQ redelivers whatever was not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    ConsumerTag,
)

from ticketing.amqp_connect import connect
from ticketing.lifecycle import Backoff, gather_batch, keep_running, wait_any

log = logging.getLogger(__name__)

Message = AbstractIncomingMessage
# How long connecting to RabbitMQ may take before it counts as down.
CONNECT_TIMEOUT_SECONDS = 5


def _one(_: Message) -> int:
    return 1


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    what: str  # names the consumer in log lines ("booking worker", "search_sync consumer")
    service: str  # the service label of ticketing_dependency_errors_total
    prefetch: int
    batch_max: int
    batch_wait_seconds: float
    publisher_confirms: bool = False
    # What a message counts toward batch_max (a booking message may carry many commands).
    size: Callable[[Message], int] = field(default=_one)


class Link:
    """One connection of a consumer, as ``attach`` sees it: the connection (for channels of
    its own), the channel (prefetch set), ``lost`` (set when the connection closes), and
    :meth:`consume` to subscribe a queue to the runtime's batches."""

    def __init__(
        self, connection: AbstractConnection, channel: AbstractChannel, lost: asyncio.Event
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.lost = lost
        self.buffer: asyncio.Queue[Message] = asyncio.Queue()
        self._consumers: list[tuple[AbstractQueue, ConsumerTag]] = []

    async def consume(
        self, queue: AbstractQueue, arguments: Mapping[str, Any] | None = None
    ) -> None:
        tag = await queue.consume(self.buffer.put, arguments=dict(arguments) if arguments else None)
        self._consumers.append((queue, tag))

    @property
    def consuming(self) -> int:
        return len(self._consumers)

    async def hand_back(self) -> None:
        """Stop taking messages; prefetched but never started, they go back to the queue."""
        for queue, tag in self._consumers:
            await queue.cancel(tag)
        while not self.buffer.empty():
            await self.buffer.get_nowait().nack(requeue=True)


class Attached(Protocol):
    """A service on one connection."""

    async def process(self, batch: list[Message], stop: asyncio.Event) -> None: ...

    async def detach(self) -> None:
        """Stop side work (a stage on a channel of its own, a sampler) before hand-back."""


Attach = Callable[[Link], Awaitable[Attached]]


async def run_consumer(
    amqp_url: str, config: ConsumerConfig, attach: Attach, stop: asyncio.Event
) -> None:
    """Consume until ``stop`` is set, reconnecting while RabbitMQ (or a dependency the
    service raises about) is down; any other exception is a bug and propagates."""

    async def session(backoff: Backoff) -> None:
        await _connected(amqp_url, config, attach, stop, backoff)

    await keep_running(config.what, session, stop, config.service)


async def _connected(
    amqp_url: str, config: ConsumerConfig, attach: Attach, stop: asyncio.Event, backoff: Backoff
) -> None:
    connection = await connect(amqp_url, timeout=CONNECT_TIMEOUT_SECONDS)
    lost = asyncio.Event()
    connection.close_callbacks.add(lambda *_: lost.set())
    try:
        channel = await connection.channel(publisher_confirms=config.publisher_confirms)
        await channel.set_qos(prefetch_count=config.prefetch)
        link = Link(connection, channel, lost)
        attached = await attach(link)
        backoff.reset()
        await _take_batches(link, attached, config, stop)
        await attached.detach()
        if not lost.is_set():
            await link.hand_back()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
        log.info("%s stopped", config.what)
    if lost.is_set() and not stop.is_set():
        raise aio_pika.exceptions.AMQPConnectionError("connection to RabbitMQ lost")


async def _take_batches(
    link: Link, attached: Attached, config: ConsumerConfig, stop: asyncio.Event
) -> None:
    while not stop.is_set() and not link.lost.is_set():
        if not link.consuming:  # the service consumes on channels of its own only
            await wait_any(stop, link.lost, seconds=None)
            continue
        batch = await gather_batch(
            link.buffer,
            stop,
            link.lost,
            config.batch_max,
            config.batch_wait_seconds,
            size=config.size,
        )
        if batch:
            await attached.process(batch, stop)

"""The RabbitMQ objects search_sync relies on, declared identically by relay and consumer.

The relay declares the queue too: a change published before any consumer ever ran must wait
in the durable queue, not be dropped as unroutable.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ticketing.messages import CATALOG_EXCHANGE, EVENT_CHANGED

QUEUE = "search_sync.events"
DEAD_EXCHANGE = "search_sync.dead"
DEAD_QUEUE = "search_sync.events.dead"
# Header carrying why a message was dead-lettered (RabbitMQ's own x-death says only where).
ERROR_HEADER = "x-search-sync-error"
# Headers the relay sets on every message it publishes from the outbox.
OUTBOX_ID_HEADER = "x-outbox-id"
CREATED_AT_HEADER = "x-outbox-created-at"


@dataclass(frozen=True, slots=True)
class Topology:
    catalog: AbstractExchange
    queue: AbstractQueue
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue


async def declare_topology(channel: AbstractChannel) -> Topology:
    catalog = await channel.declare_exchange(
        CATALOG_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        DEAD_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(DEAD_QUEUE, durable=True)
    await dead_queue.bind(dead_exchange)
    queue = await channel.declare_queue(
        QUEUE, durable=True, arguments={"x-dead-letter-exchange": DEAD_EXCHANGE}
    )
    await queue.bind(catalog, routing_key=EVENT_CHANGED)
    return Topology(catalog, queue, dead_exchange, dead_queue)

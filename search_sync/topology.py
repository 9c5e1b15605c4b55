"""The RabbitMQ objects search_sync relies on, declared identically by relay and consumer
(ticketing.amqp_topology): the events queue on the catalog exchange, dead-lettering into
search_sync.dead.

The relay declares the queue too: a change published before any consumer ever ran must wait
in the durable queue, not be dropped as unroutable.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel

from ticketing.amqp_topology import QueueSpec, Topology, TopologySpec, declare
from ticketing.messages import CATALOG_EXCHANGE, EVENT_CHANGED

QUEUE = "search_sync.events"
DEAD_EXCHANGE = "search_sync.dead"
DEAD_QUEUE = "search_sync.events.dead"
# Header carrying why a message was dead-lettered (RabbitMQ's own x-death says only where).
ERROR_HEADER = "x-search-sync-error"
# Headers the relay sets on every message it publishes from the outbox.
OUTBOX_ID_HEADER = "x-outbox-id"
CREATED_AT_HEADER = "x-outbox-created-at"

SPEC = TopologySpec(
    exchange=CATALOG_EXCHANGE,
    exchange_type=aio_pika.ExchangeType.TOPIC,
    dead_exchange=DEAD_EXCHANGE,
    dead_queue=DEAD_QUEUE,
    queues=(QueueSpec(QUEUE, EVENT_CHANGED),),
)


async def declare_topology(channel: AbstractChannel, queue_type: str) -> Topology:
    return await declare(channel, SPEC, queue_type)

"""A service's RabbitMQ objects, declared the same way by its producers and its consumers.

Both queue services have one shape: an exchange, work queues bound to it by routing key,
and a dead-letter pair (a fanout exchange and one durable queue) that every work queue
rejects into. Producers declare it too: whoever starts first, a message never meets a
missing queue, and a message published before any consumer ran waits in a durable queue
instead of being dropped as unroutable.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class TopologySpec:
    exchange: str
    exchange_type: aio_pika.ExchangeType
    dead_exchange: str
    dead_queue: str
    queues: tuple[QueueSpec, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    """What was declared: the exchange, the work queues in the spec's order, and the
    dead-letter exchange and queue."""

    exchange: AbstractExchange
    queues: tuple[AbstractQueue, ...]
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue

    def named(self, name: str) -> AbstractQueue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)


async def declare(channel: AbstractChannel, spec: TopologySpec) -> Topology:
    """Declare (idempotently) every object of ``spec`` on ``channel``."""
    exchange = await channel.declare_exchange(spec.exchange, spec.exchange_type, durable=True)
    dead_exchange = await channel.declare_exchange(
        spec.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(spec.dead_queue, durable=True)
    await dead_queue.bind(dead_exchange)
    queues = []
    for queue_spec in spec.queues:
        # A message a consumer rejects (nack without requeue) goes to the dead letters.
        queue = await channel.declare_queue(
            queue_spec.name,
            durable=True,
            arguments={"x-dead-letter-exchange": spec.dead_exchange},
        )
        await queue.bind(exchange, routing_key=queue_spec.routing_key)
        queues.append(queue)
    return Topology(exchange, tuple(queues), dead_exchange, dead_queue)

"""A service's RabbitMQ objects, declared the same way by its producers and its consumers.

Both queue services have one shape: an exchange, work queues bound to it by routing key,
and a dead-letter pair (a fanout exchange and one durable queue) that every work queue
rejects into, every queue of one type (``TICKETING_AMQP_QUEUE_TYPE``: classic, or quorum,
replicated over a cluster's nodes). Producers declare it too: whoever starts first, a
message never meets a missing queue, and a message published before any consumer ran
waits in a durable queue instead of being dropped as unroutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed


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


class QueueTypeMismatch(RuntimeError):
    """A queue exists with another type than ``TICKETING_AMQP_QUEUE_TYPE`` says: RabbitMQ
    cannot convert a queue, so the service stops and says how to move."""


async def declare(channel: AbstractChannel, spec: TopologySpec, queue_type: str) -> Topology:
    """Declare (idempotently) every object of ``spec`` on ``channel``, its queues of
    ``queue_type`` (``classic`` or ``quorum``)."""
    exchange = await channel.declare_exchange(spec.exchange, spec.exchange_type, durable=True)
    dead_exchange = await channel.declare_exchange(
        spec.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    typed = {"x-queue-type": queue_type}
    dead_queue = await _declare_queue(channel, spec.dead_queue, typed)
    await dead_queue.bind(dead_exchange)
    queues = []
    for queue_spec in spec.queues:
        # A message a consumer rejects (nack without requeue) goes to the dead letters.
        queue = await _declare_queue(
            channel, queue_spec.name, {**typed, "x-dead-letter-exchange": spec.dead_exchange}
        )
        await queue.bind(exchange, routing_key=queue_spec.routing_key)
        queues.append(queue)
    return Topology(exchange, tuple(queues), dead_exchange, dead_queue)


async def _declare_queue(
    channel: AbstractChannel, name: str, arguments: dict[str, Any]
) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as exc:
        if "x-queue-type" not in str(exc):
            raise
        wanted = arguments["x-queue-type"]
        other = "classic" if wanted == "quorum" else "quorum"
        raise QueueTypeMismatch(
            f"RabbitMQ queue {name!r} is not a {wanted} queue "
            f"(TICKETING_AMQP_QUEUE_TYPE={wanted}) and RabbitMQ cannot change a queue's type. "
            f"To move: stop the front doors, let the workers empty it, delete it "
            f"(rabbitmqctl delete_queue {name} -p <vhost>) and start again; or keep "
            f"TICKETING_AMQP_QUEUE_TYPE={other}. ({exc})"
        ) from exc

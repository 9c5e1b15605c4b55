"""The RabbitMQ objects of the booking path, declared identically by the front door and the
workers: whoever starts first, a command never meets a missing queue."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ticketing.messages import (
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    BOOKING_PAYMENTS_QUEUE,
    BOOKING_QUEUE_PREFIX,
    PAYMENTS_ROUTING_KEY,
)

DEAD_EXCHANGE = "ticketing.booking.dead"
# Why a message was dead-lettered (RabbitMQ's own x-death says only where from).
ERROR_HEADER = "x-booking-error"


@dataclass(frozen=True, slots=True)
class Topology:
    exchange: AbstractExchange
    queues: list[AbstractQueue]
    payments: AbstractQueue
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue


async def declare_topology(channel: AbstractChannel, partitions: int) -> Topology:
    exchange = await channel.declare_exchange(
        BOOKING_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        DEAD_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(BOOKING_DEAD_LETTER_QUEUE, durable=True)
    await dead_queue.bind(dead_exchange)
    queues = []
    for partition in range(partitions):
        # Every worker consumes every partition: fans of one hot event are served by all
        # workers at once, and the database (conditional updates, SKIP LOCKED) arbitrates.
        queue = await channel.declare_queue(
            f"{BOOKING_QUEUE_PREFIX}{partition}",
            durable=True,
            arguments={"x-dead-letter-exchange": DEAD_EXCHANGE},
        )
        await queue.bind(exchange, routing_key=str(partition))
        queues.append(queue)
    payments = await channel.declare_queue(
        BOOKING_PAYMENTS_QUEUE,
        durable=True,
        arguments={"x-dead-letter-exchange": DEAD_EXCHANGE},
    )
    await payments.bind(exchange, routing_key=PAYMENTS_ROUTING_KEY)
    return Topology(exchange, queues, payments, dead_exchange, dead_queue)

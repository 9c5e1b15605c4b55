"""The RabbitMQ objects of the booking path, declared identically by the front door and the
workers (ticketing.amqp_topology): one partition queue per TICKETING_BOOKING_PARTITIONS and
the payments queue, on the booking exchange, dead-lettering into booking.dead."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from ticketing.amqp_topology import QueueSpec, Topology, TopologySpec, declare
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


def booking_spec(partitions: int) -> TopologySpec:
    # Every worker may consume every partition (consumer priorities only say who is first
    # in line): the database (conditional updates, SKIP LOCKED) arbitrates.
    queues = [QueueSpec(f"{BOOKING_QUEUE_PREFIX}{p}", str(p)) for p in range(partitions)]
    return TopologySpec(
        exchange=BOOKING_EXCHANGE,
        exchange_type=aio_pika.ExchangeType.DIRECT,
        dead_exchange=DEAD_EXCHANGE,
        dead_queue=BOOKING_DEAD_LETTER_QUEUE,
        queues=(*queues, QueueSpec(BOOKING_PAYMENTS_QUEUE, PAYMENTS_ROUTING_KEY)),
    )


@dataclass(frozen=True, slots=True)
class BookingTopology(Topology):
    """The declared booking objects, with a name for each kind of queue."""

    @property
    def partitions(self) -> tuple[AbstractQueue, ...]:
        return tuple(q for q in self.queues if q.name.startswith(BOOKING_QUEUE_PREFIX))

    @property
    def payments(self) -> AbstractQueue:
        return self.named(BOOKING_PAYMENTS_QUEUE)


async def declare_topology(
    channel: AbstractChannel, partitions: int, queue_type: str
) -> BookingTopology:
    declared = await declare(channel, booking_spec(partitions), queue_type)
    return BookingTopology(
        declared.exchange, declared.queues, declared.dead_exchange, declared.dead_queue
    )

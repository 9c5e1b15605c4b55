"""The consumer loop booking_worker and search_sync share (ticketing.consumer_runtime), on a
real RabbitMQ: batches in queue order and one at a time, a stop that finishes the batch in
hand and hands the rest back, dead letters, and a reconnect after the connection is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from tests.support import eventually, work_topology
from ticketing.amqp_topology import Topology, TopologySpec, declare
from ticketing.consumer_runtime import ConsumerConfig, Link, Message, run_consumer

REJECT = b"reject"


def a_spec() -> TopologySpec:
    return work_topology(f"test.runtime.{uuid.uuid4().hex[:8]}")


def a_config(batch_max: int = 5, prefetch: int = 10) -> ConsumerConfig:
    return ConsumerConfig(
        what="test consumer",
        service="test",
        prefetch=prefetch,
        batch_max=batch_max,
        batch_wait_seconds=0.05,
    )


class Service:
    """Records the batches it is given; acks each message, rejects REJECT (dead letter);
    with ``hold_first`` it keeps the first batch in hand until ``release`` is set."""

    def __init__(self, spec: TopologySpec, *, hold_first: bool = False) -> None:
        self.spec = spec
        self.batches: list[list[bytes]] = []
        self.links: list[Link] = []
        self.in_hand = 0
        self.most_in_hand = 0
        self.hold_first = hold_first
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def bodies(self) -> list[bytes]:
        return [body for batch in self.batches for body in batch]

    async def attach(self, link: Link) -> Session:
        topology = await declare(link.channel, self.spec, "classic")
        await link.consume(topology.queues[0])
        self.links.append(link)
        return Session(self)


class Session:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def process(self, batch: list[Message], stop: asyncio.Event) -> None:
        service = self.service
        service.in_hand += 1
        service.most_in_hand = max(service.most_in_hand, service.in_hand)
        service.batches.append([message.body for message in batch])
        if service.hold_first and len(service.batches) == 1:
            service.holding.set()
            await service.release.wait()
        for message in batch:
            if message.body == REJECT:
                await message.nack(requeue=False)
            else:
                await message.ack()
        service.in_hand -= 1

    async def detach(self) -> None:
        pass


async def publish(amqp_url: str, spec: TopologySpec, bodies: list[bytes]) -> Topology:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        topology = await declare(channel, spec, "classic")
        for body in bodies:
            await topology.exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="work",
            )
        return topology


async def take_all(amqp_url: str, queue_name: str) -> list[bytes]:
    """Every message waiting in a queue, taken and acked."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        bodies = []
        while (message := await queue.get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies


async def remove(amqp_url: str, spec: TopologySpec) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in (*(q.name for q in spec.queues), spec.dead_queue):
            await channel.queue_delete(queue)
        for exchange in (spec.exchange, spec.dead_exchange):
            await channel.exchange_delete(exchange)


@pytest.fixture
async def spec(amqp_url):
    made = a_spec()
    yield made
    await remove(amqp_url, made)


def numbered(count: int, start: int = 0) -> list[bytes]:
    return [str(i).encode() for i in range(start, start + count)]


@contextlib.asynccontextmanager
async def consuming(amqp_url: str, service: Service) -> AsyncIterator[asyncio.Event]:
    """The runtime running ``service`` until the block ends (or sets the stop it gets)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(amqp_url, a_config(), service.attach, stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # and any exception it ended with


async def taken(service: Service, count: int) -> None:
    async def how_many() -> int:
        return len(service.bodies)

    await eventually(how_many, lambda n: n == count, 15, f"{count} messages taken")


async def test_batches_come_in_queue_order_one_at_a_time(amqp_url, spec) -> None:
    await publish(amqp_url, spec, numbered(23))
    service = Service(spec)
    async with consuming(amqp_url, service):
        await taken(service, 23)
    assert service.bodies == numbered(23)
    assert max(len(batch) for batch in service.batches) <= 5
    assert service.most_in_hand == 1


async def test_stop_finishes_the_batch_in_hand_and_hands_back_the_rest(
    amqp_url, spec, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="ticketing.consumer_runtime")
    await publish(amqp_url, spec, numbered(30))
    service = Service(spec, hold_first=True)
    async with consuming(amqp_url, service) as stop:
        await asyncio.wait_for(service.holding.wait(), 10)
        stop.set()
        service.release.set()
    # Only the batch in hand was taken; the prefetched rest waits in the queue, in order,
    # for another consumer, and the finished batch does not come back.
    assert service.batches == [numbered(5)]
    assert await take_all(amqp_url, spec.queues[0].name) == numbered(25, start=5)
    assert "test consumer stopped" in caplog.text


async def test_a_rejected_message_goes_to_the_dead_letter_queue(amqp_url, spec) -> None:
    await publish(amqp_url, spec, [b"1", REJECT, b"2"])
    service = Service(spec)
    async with consuming(amqp_url, service):
        await taken(service, 3)
    assert await take_all(amqp_url, spec.dead_queue) == [REJECT]
    assert await take_all(amqp_url, spec.queues[0].name) == []


async def test_a_lost_connection_is_opened_again_and_nothing_is_lost(amqp_url, spec) -> None:
    await publish(amqp_url, spec, numbered(5))
    service = Service(spec)
    async with consuming(amqp_url, service):
        await taken(service, 5)
        await service.links[0].connection.close()  # as a broker restart would
        await publish(amqp_url, spec, numbered(5, start=5))
        await taken(service, 10)
    assert len(service.links) == 2
    assert sorted(service.bodies, key=int) == numbered(10)

"""Issue 13 item 2: a RabbitMQ node dies (kill -9) under a consumer connected to it, the
node that leads its quorum queue. The consumer (ticketing.consumer_runtime, as the booking
workers and search_sync run it) comes back on a survivor and every message arrives;
publishers connect past the dead node. The control: a classic queue on the same node
is gone with it, its messages out of reach until the node returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TypeVar

import aio_pika
import pytest
from aiormq.exceptions import AMQPError, DeliveryError

from deploy.rabbitmq_cluster import Cluster
from tests.support import eventually, work_topology
from ticketing import amqp_connect
from ticketing.amqp_topology import Topology, TopologySpec, declare
from ticketing.consumer_runtime import ConsumerConfig, Link, Message, run_consumer

BEFORE, AFTER = 300, 100
T = TypeVar("T")


class Counting:
    """A service that takes every message slowly and remembers each one's body."""

    def __init__(self, spec: TopologySpec) -> None:
        self.spec = spec
        self.seen: set[str] = set()
        self.ports: list[int] = []  # the node of each connection, in order
        self.last_at = 0.0

    async def attach(self, link: Link) -> Counting:
        self.ports.append(link.connection.url.port or 0)
        topology: Topology = await declare(link.channel, self.spec, "quorum")
        await link.consume(topology.queues[0])
        return self

    async def process(self, batch: list[Message], stop: asyncio.Event) -> None:
        for message in batch:
            await asyncio.sleep(0.005)
            self.seen.add(message.body.decode())
            await message.ack()
        self.last_at = time.monotonic()

    async def detach(self) -> None:
        return None


async def publish(url: str, exchange: str, bodies: list[str]) -> int:
    """Publish each body with a confirm, as the front door does (waitingroom/booking/rpc.py):
    a publish refused or not confirmed within 2 s is tried again on a new channel (while a
    quorum queue elects a leader it refuses what it cannot replicate, and poisons the channel
    that tried). How many tries failed."""
    failed = 0
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            message = aio_pika.Message(
                body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            while True:
                target = await channel.get_exchange(exchange)
                try:
                    await asyncio.wait_for(target.publish(message, routing_key="work"), 2)
                    break
                except (DeliveryError, TimeoutError):
                    failed += 1
                    channel = await connection.channel(publisher_confirms=True)
    return failed


async def now(value: T) -> T:
    """``value``, as the awaitable ``eventually`` polls."""
    return value


def leader_of(cluster: Cluster, queue: str, asked) -> str:
    out = asked.ctl("list_queues", "name", "leader", "--formatter", "json")
    return next(q["leader"] for q in json.loads(out) if q["name"] == queue)


async def test_a_consumer_on_the_dying_leader_loses_nothing(cluster: Cluster, monkeypatch):
    name = f"tk.loss.{uuid.uuid4().hex[:6]}"
    the_spec = work_topology(name)
    first = cluster.nodes[0]
    config = ConsumerConfig(
        what="test consumer", service="test", prefetch=10, batch_max=10, batch_wait_seconds=0.01
    )
    service = Counting(the_spec)
    # The consumer connects to the first node first: it declares the queue, so it leads it.
    monkeypatch.setattr(amqp_connect.random, "randrange", lambda n: 0)
    stop = asyncio.Event()
    consumer = asyncio.create_task(
        run_consumer(cluster.urls, config, service.attach, stop)  # type: ignore[arg-type]
    )
    try:
        await eventually(lambda: now(service.ports), bool, 30, "the consumer connected")
        assert service.ports == [first.port]
        assert leader_of(cluster, f"{name}.work", first) == first.node
        survivor = cluster.nodes[1]
        bodies = [f"m{i}" for i in range(BEFORE)]
        await publish(survivor.url(), name, bodies)
        await eventually(lambda: now(len(service.seen)), lambda n: n >= 50, 30, "some taken")

        first.kill()
        killed_at = time.monotonic()
        # A publisher given the dead node first connects to the next one.
        later = [f"m{i}" for i in range(BEFORE, BEFORE + AFTER)]
        connection = await amqp_connect.connect(cluster.urls, timeout=5)
        assert connection.url.port != first.port
        await connection.close()
        nacks = await publish(survivor.url(), name, later[:1])
        taken_after = time.monotonic() - killed_at
        await publish(survivor.url(), name, later[1:])

        await eventually(
            lambda: now(len(service.seen)), lambda n: n == BEFORE + AFTER, 60, "every message"
        )
        assert service.seen == set(bodies) | set(later)
        assert len(service.ports) >= 2 and service.ports[-1] != first.port, service.ports
        print(
            f"\nnode killed: publishes taken again after {taken_after:.1f} s ({nacks} nacks), "
            f"the consumer caught up {service.last_at - killed_at:.1f} s after the kill"
        )
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer, 30)
        first.start()  # the next test finds three nodes


async def test_control_a_classic_queue_dies_with_its_node(cluster: Cluster):
    name = f"tk.classic.{uuid.uuid4().hex[:6]}"
    home, other = cluster.nodes[2], cluster.nodes[1]
    connection = await aio_pika.connect(home.url())
    async with connection:
        await declare(await connection.channel(), work_topology(name), "classic")
    await publish(other.url(), name, [f"m{i}" for i in range(20)])
    home.kill()
    try:
        connection = await aio_pika.connect(other.url())
        async with connection:
            channel = await connection.channel()
            with pytest.raises(AMQPError) as caught:  # its home node down: out of reach
                await channel.declare_queue(f"{name}.work", passive=True)
            assert "down" in str(caught.value), caught.value
    finally:
        home.start()

"""Issue 13 item 2: on a three-node RabbitMQ cluster the booking partitions, the payments
queue, search_sync's queue and both dead-letter queues are quorum queues, each with a
member on every node; a worker's prioritised consumer is taken by them; and a service that
meets a queue of the other type stops and says how to move (RabbitMQ cannot convert one)."""

from __future__ import annotations

import json

import aio_pika
import pytest

from deploy.rabbitmq_cluster import Cluster
from search_sync.topology import declare_topology as declare_search
from ticketing.amqp_connect import connect
from ticketing.amqp_topology import QueueTypeMismatch
from ticketing.booking_topology import declare_topology as declare_booking

PARTITIONS = 4


def queues(cluster: Cluster) -> dict[str, dict]:
    node = cluster.nodes[0]
    out = node.ctl("list_queues", "name", "type", "members", "--formatter", "json")
    return {q["name"]: q for q in json.loads(out)}


async def test_every_queue_is_a_quorum_queue_with_a_member_on_each_node(cluster: Cluster):
    connection = await connect(cluster.urls, timeout=5)
    async with connection:
        channel = await connection.channel()
        booking = await declare_booking(channel, PARTITIONS, "quorum")
        search = await declare_search(channel, "quorum")

        # A booking worker's consumer, first in line by priority (booking_worker/worker.py).
        async def ignore(_: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        await booking.partitions[0].consume(ignore, arguments={"x-priority": 10})
    names = {q.name for q in (*booking.queues, booking.dead_queue, *search.queues)}
    names.add(search.dead_queue.name)
    assert len(names) == PARTITIONS + 4  # partitions, payments, search, two dead letters
    listed = queues(cluster)
    every_node = sorted(node.node for node in cluster.nodes)
    for name in names:
        assert listed[name]["type"] == "quorum", listed[name]
        assert sorted(listed[name]["members"]) == every_node, listed[name]


async def test_a_queue_of_the_other_type_stops_the_service_with_the_way_to_move(
    cluster: Cluster,
):
    connection = await connect(cluster.urls, timeout=5)
    async with connection:
        await declare_search(await connection.channel(), "quorum")
        with pytest.raises(QueueTypeMismatch) as caught:
            await declare_search(await connection.channel(), "classic")
        message = str(caught.value)
        assert "search_sync.events" in message or "search_sync.events.dead" in message
        assert "rabbitmqctl delete_queue" in message
        assert "TICKETING_AMQP_QUEUE_TYPE=quorum" in message
        # the control: the type it has is declared again without a word
        await declare_search(await connection.channel(), "quorum")
    # and a classic one stays classic on the cluster, asked so
    connection = await aio_pika.connect(cluster.nodes[1].url())
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("tk.classic.here", durable=True)
    assert queues(cluster)["tk.classic.here"]["type"] == "classic"

"""Issue 13 item 5: the waitingroom's /healthz names RabbitMQ's mode, its nodes and how
many answer: a booking front door on the three-node cluster reads 3 of 3, then 2 of 3 and
still ok once a node it is not connected to stops; on the machine's own node, single, 1
of 1. Without its connection a front door answers 503, while a queue process stays ready
and reports RabbitMQ down (waitingroom/app.py says why)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy.rabbitmq_cluster import Cluster
from tests.support import eventually, free_port, settings_with
from ticketing import amqp_connect, amqp_health
from ticketing.config import Settings
from waitingroom.app import create_app
from waitingroom.booking.commands import RPC_KEY


async def serving(settings: Settings, role: str = "booking", connects: bool = True) -> TestClient:
    client = TestClient(TestServer(create_app(settings, role)))
    await client.start_server()
    if connects:
        await asyncio.wait_for(client.app[RPC_KEY].connected.wait(), 20)
    return client


async def health(client: TestClient) -> tuple[int, Any]:
    async with client.get("/healthz") as resp:
        return resp.status, await resp.json()


@pytest.fixture
def cluster_vhost(cluster: Cluster) -> Iterator[str]:
    """TICKETING_AMQP_URL for a vhost of this test's own on every node of the cluster."""
    vhost = f"health-{uuid.uuid4().hex[:6]}"
    cluster.nodes[0].ctl("add_vhost", vhost)
    cluster.nodes[0].ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield " ".join(node.url(vhost) for node in cluster.nodes)
    cluster.nodes[0].ctl("delete_vhost", vhost)


@pytest.fixture
async def front_door_on_the_cluster(
    settings: Settings, cluster_vhost: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient]:
    monkeypatch.setattr(amqp_health, "PROBE_INTERVAL_SECONDS", 0.2)
    monkeypatch.setattr(amqp_connect.random, "randrange", lambda n: 0)  # on the first node
    client = await serving(
        settings_with(
            settings, amqp_url=cluster_vhost, amqp_queue_type="quorum", booking_partitions=1
        )
    )
    yield client
    await client.close()


async def test_a_front_door_counts_the_nodes_that_answer(
    cluster: Cluster, front_door_on_the_cluster: TestClient
):
    client, lost = front_door_on_the_cluster, cluster.nodes[2]
    whole = {"status": "ok", "mode": "cluster", "nodes": 3, "healthy": 3}
    status, body = await eventually(
        lambda: health(client), lambda r: r[1]["components"]["rabbitmq"] == whole, 5, "3 of 3"
    )
    assert status == 200
    lost.ctl("stop_app")  # its AMQP listener closes; the node stays in the cluster
    try:
        three_less_one = {**whole, "healthy": 2}
        status, body = await eventually(
            lambda: health(client),
            lambda r: r[1]["components"]["rabbitmq"] == three_less_one,
            5,
            "2 of 3",
        )
        assert status == 200 and body["status"] == "ok"
    finally:
        lost.ctl("start_app")  # the next module finds three nodes
    await eventually(
        lambda: health(client), lambda r: r[1]["components"]["rabbitmq"] == whole, 5, "back"
    )


async def test_on_one_node_it_is_single(settings: Settings):
    client = await serving(settings)
    try:
        status, body = await health(client)
    finally:
        await client.close()
    assert status == 200
    assert body["components"]["rabbitmq"] == {
        "status": "ok",
        "mode": "single",
        "nodes": 1,
        "healthy": 1,
    }


@pytest.mark.parametrize(("role", "expected"), [("booking", 503), ("all", 200)])
async def test_without_its_connection_only_a_front_door_is_unready(
    settings: Settings, role: str, expected: int
):
    nowhere = settings_with(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    client = await serving(nowhere, role, connects=False)
    try:
        status, body = await health(client)
    finally:
        await client.close()
    assert status == expected, body
    assert body["components"]["rabbitmq"] == "down: NotConnected"
    if status == 503:
        assert body["detail"] == "Unreachable: rabbitmq"  # and nothing else

"""Redis Cluster nodes killed (kill -9) under a running queue, in the module's cluster.

- The node the hub listens on for notifications: the hub subscribes on another at once,
  and a change reaches the fans' sockets again. The control: a hub that cannot subscribe
  again tells them nothing (only pub/sub carries a ``resumed``), so what the first hears
  is the new subscription's doing.
- An event's primary: its replica takes over, joins and status resume within 15 s, the
  fans keep their places in order, and nobody admitted before the loss is admitted again.
  The control: the same loss without a replica (the shard's replica killed too, as in a
  cluster without replicas) leaves that event's queue unreachable for longer than the
  failover took, while an event on another primary goes on: the recovery is the replica's.

Each test but the last leaves the cluster whole (the killed node back)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio.client import PubSub
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from deploy.redis_cluster import Cluster
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    socket_path,
)
from tests.integration.redis_cluster.conftest import NODE_TIMEOUT_MS
from tests.integration.redis_cluster.support import RESUME_SECONDS, Line, joins_resume
from tests.support import eventually
from ticketing.redis_connect import RedisClient
from ticketing.redis_nodes import subscribe
from waitingroom.queue import hub as hub_module
from waitingroom.queue.runtime import QUEUE_KEY


def subscribers(cluster: Cluster, channel: str) -> dict[int, int]:
    """Each running node's own subscribers of ``channel`` (PUBSUB NUMSUB is per node)."""
    counts = {}
    for node in cluster.nodes:
        if node.running:
            with node.client() as direct:
                counts[node.port] = int(direct.pubsub_numsub(channel)[0][1])
    return counts


async def resumed_told(ws: aiohttp.ClientWebSocketResponse, told: asyncio.Event) -> None:
    async for message in ws:
        if message.type == WSMsgType.TEXT and message.json()["type"] == "resumed":
            told.set()


def slot_of(client, event: int) -> int:
    return key_slot(client.app[QUEUE_KEY].store.key(event, "waiting").encode())


@pytest.mark.parametrize("resubscribes", [True, False], ids=["hub", "control: subscribes once"])
async def test_the_hub_subscribes_again_when_its_node_dies(
    cluster_client, cluster_settings, pool, redis_cluster, monkeypatch, resubscribes
) -> None:
    client, settings = cluster_client, cluster_settings
    channel = client.app[QUEUE_KEY].store.channel
    if not resubscribes:
        subscribed_once = False

        async def once(redis: RedisClient, channel: str) -> PubSub:
            nonlocal subscribed_once
            if subscribed_once:
                raise RedisConnectionError("the control subscribes only once")
            subscribed_once = True
            return await subscribe(redis, channel)

        monkeypatch.setattr(hub_module, "subscribe", once)

    async def hubs() -> dict[int, int]:
        return await asyncio.to_thread(subscribers, redis_cluster, channel)

    on = await eventually(hubs, lambda c: sum(c.values()) == 1, 5, "the hub subscribed")
    node = redis_cluster.node(next(port for port, count in on.items() if count))
    event = await queue_event(pool)
    while redis_cluster.primary_of(slot_of(client, event)) == node:
        event = await queue_event(pool)  # an event that stays reachable: only the hub's lost
    await in_snapshot(client, settings, event)
    await patch_queue(client, settings, event, paused=True)
    await join(client, settings, "listener", event)
    told = asyncio.Event()  # a resume is told over pub/sub only (rounds tell statuses)
    async with client.ws_connect(await socket_path(client, settings, "listener", event)) as ws:
        listening = asyncio.create_task(resumed_told(ws, told))
        redis_cluster.kill(node)
        lost = time.monotonic()
        if resubscribes:
            await eventually(hubs, lambda c: sum(c.values()) == 1, 10, "the hub on another node")
            print(f"\nthe hub subscribed again {time.monotonic() - lost:.1f} s after its node died")
        await patch_queue(client, settings, event, paused=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(told.wait(), 1.5)  # told at once, or never
        await ws.close()
        await listening
    redis_cluster.start(node)
    redis_cluster.wait_ok()
    assert told.is_set() == resubscribes


async def test_a_replica_takes_over_and_the_line_goes_on(
    cluster_client, cluster_settings, pool, redis_cluster
) -> None:
    client, settings = cluster_client, cluster_settings
    line = await Line.moving(client, settings, pool)
    await line.admitted(3)
    primary = redis_cluster.primary_of(slot_of(client, line.event))
    redis_cluster.kill(primary)
    resumed = await joins_resume(client, settings, line.event)
    print(f"\njoins resumed {resumed:.1f} s after the event's primary was killed")
    assert resumed < RESUME_SECONDS
    await line.check()  # everyone in their place; nobody admitted twice
    assert redis_cluster.primary_of(slot_of(client, line.event)) != primary
    await line.admitted(3)  # admission goes on on the new primary
    redis_cluster.start(primary)  # back on its data, as the new primary's replica
    redis_cluster.wait_ok()
    assert redis_cluster.roles()[primary.port]["role"] == "slave"


async def test_without_a_replica_the_lost_primarys_events_stay_unreachable(
    cluster_client, cluster_settings, pool, redis_cluster
) -> None:
    client, settings = cluster_client, cluster_settings
    on: dict[int, int] = {}  # primary's port -> an event whose queue it holds
    while len(on) < 2:
        event = await queue_event(pool)
        on.setdefault(redis_cluster.primary_of(slot_of(client, event)).port, event)
    (lost_port, lost), (_, kept) = list(on.items())[:2]
    for event in (lost, kept):
        assert (await join(client, settings, "before", event))[0] == 200
    roles = redis_cluster.roles()
    shard = [port for port, role in roles.items() if lost_port in (port, role["primary"])]
    for port in shard:
        redis_cluster.kill(redis_cluster.node(port))
    # Longer than the failover takes with a replica (a node timeout to notice, about one
    # more to elect and promote).
    until = time.monotonic() + 3 * NODE_TIMEOUT_MS / 1000
    answers = set()
    while time.monotonic() < until:
        (status, _), (other, body) = await asyncio.gather(
            queue_status(client, settings, "before", lost),
            queue_status(client, settings, "before", kept),
        )
        answers.add(status)
        assert other == 200, body  # the other primaries' events go on
    assert answers == {503}, answers

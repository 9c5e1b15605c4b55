"""Issue 13 item 2: the front door's commands flow again after the death of the node that
led the booking queues, while the front door itself stays connected to a survivor.

RabbitMQ 3.10 poisons a channel that published to a quorum queue during its leader's
election: that publish is never confirmed and every later one on the channel is refused,
while a new channel publishes at once. The RPC client (waitingroom/booking/rpc.py) opens a
new publishing channel after a failed publish. The control, the same with the renewal
switched off: after the election every command is still refused."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aio_pika
import pytest

from deploy.rabbitmq_cluster import Cluster
from ticketing import amqp_connect
from ticketing.booking_topology import declare_topology
from ticketing.config import Settings
from ticketing.messages.commands import TicketStatus
from ticketing.problems import Problem
from waitingroom.booking.rpc import BookingRpc

SECONDS = 10  # of calls after the kill: the election and well past it


def queued(cluster: Cluster, asked: int, vhost: str) -> int:
    out = cluster.nodes[asked].ctl(
        "list_queues", "-p", vhost, "name", "messages", "--formatter", "json"
    )
    return sum(q["messages"] for q in json.loads(out) if q["name"].startswith("booking."))


@pytest.mark.parametrize("renew", [True, False], ids=["renewed channel", "control: same"])
async def test_commands_are_taken_again_once_the_queues_have_a_new_leader(
    cluster: Cluster, monkeypatch, renew
):
    leader, front = cluster.nodes[0], cluster.nodes[1]
    vhost = f"rpc-{uuid.uuid4().hex[:6]}"
    front.ctl("add_vhost", vhost)
    front.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    # Declared through the first node: every booking queue's leader is there.
    connection = await aio_pika.connect(leader.url(vhost))
    async with connection:
        await declare_topology(await connection.channel(), 1, "quorum")
    urls = " ".join(node.url(vhost) for node in cluster.nodes)
    settings = Settings(
        env="test",
        amqp_url=urls,
        amqp_queue_type="quorum",
        booking_partitions=1,
        booking_rpc_timeout_seconds=1,
    )
    monkeypatch.setattr(amqp_connect.random, "randrange", lambda n: 1)  # the front's node
    rpc = BookingRpc(settings)
    if not renew:

        async def kept(_: object) -> None:
            return None

        rpc._renew = kept  # type: ignore[method-assign]
    rpc.start()
    try:
        await asyncio.wait_for(rpc.connected.wait(), 20)
        leader.kill()
        killed_at = time.monotonic()
        outcomes: list[tuple[float, str]] = []
        while time.monotonic() - killed_at < SECONDS:
            command = TicketStatus(request_id=uuid.uuid4().hex, user_id="fan", ticket_id=1)
            try:
                await rpc.call(command, 1)
            except Problem as problem:  # no worker here: a published command times out
                outcomes.append((time.monotonic() - killed_at, problem.detail))
            await asyncio.sleep(0.25)
        late = [detail for at, detail in outcomes if at > SECONDS - 4]
        published = queued(cluster, 1, vhost)
        refused = [at for at, detail in outcomes if "not reachable" in detail]
        print(
            f"\nrenew={renew}: {published} commands queued; refused until "
            f"{max(refused, default=0):.1f} s after the kill; the last 4 s: {set(late)}"
        )
        if renew:
            assert published >= len(late) > 0
            assert all("did not answer in time" in detail for detail in late), late
        else:
            assert published == 0
            assert all("not reachable" in detail for detail in late), late
    finally:
        await rpc.close()
        leader.start()
        front.ctl("delete_vhost", vhost)

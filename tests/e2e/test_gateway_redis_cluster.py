"""The gateway's join on a Redis Cluster of three primaries (deploy/redis_cluster.py): it
sends each event's join to the primary of the event's slot and answers it itself; it
follows that slot while it is resharded (ASK while its keys move, MOVED once they have);
a primary that lost PLACE passes its events' joins on until the waitingroom's client loads
it again; and a join it cannot place in Redis goes to the waitingroom (the controls: no
node reachable, or the slot's primary down). Each test has a gateway of its own, one
worker, so what its slot map knows is what the test made it learn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from deploy.redis_cluster import Cluster, RedisNode, free_ports
from tests.e2e.gateway_redis import (
    GATEWAY,
    Gateway,
    place_of,
    publish_events,
    queue_key,
    running_gateway,
)
from tests.servers import RUN_ID
from tests.support import free_port
from ticketing.config import Settings
from waitingroom.queue.scripts import PLACE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("redis-cluster")
    setup = Cluster.layout(root, free_ports(6), primaries=3, replicas=0, node_timeout_ms=2000)
    try:
        setup.up()
        yield setup
    finally:
        setup.down()


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Iterator[RedisCluster]:
    """What the waitingroom holds: redis-py's cluster client."""
    with RedisCluster("127.0.0.1", cluster.nodes[0].port, socket_timeout=5) as cluster_client:
        yield cluster_client


@pytest.fixture
def gateway(tmp_path: Path, cluster: Cluster) -> Iterator[Gateway]:
    with running_gateway(tmp_path / "gateway", cluster.url()) as running:
        yield running


def _slot(event_id: int) -> int:
    return key_slot(queue_key(event_id, "waiting").encode())


def _primaries(cluster: Cluster) -> list[RedisNode]:
    roles = cluster.roles()
    return [cluster.node(port) for port in sorted(roles) if roles[port]["role"] == "master"]


def _event_on(cluster: Cluster, node: RedisNode, first: int) -> int:
    """The first event id from ``first`` whose queue ``node`` serves."""
    # a range as [first, last], a lone slot (one that moved) as [slot]
    ranges = [(int(r[0]), int(r[-1])) for r in cluster.roles()[node.port]["slots"]]
    return next(
        e for e in range(first, first + 1000) if any(lo <= _slot(e) <= hi for lo, hi in ranges)
    )


def test_each_event_is_answered_by_the_primary_of_its_slot(
    cluster: Cluster, client: RedisCluster, gateway: Gateway
):
    primaries = _primaries(cluster)
    assert len(primaries) == 3
    events = {node.port: _event_on(cluster, node, 1000) for node in primaries}
    publish_events(client, *events.values())
    for node in primaries:
        event_id = events[node.port]
        status, answered_by, body = gateway.join(event_id, "spread")
        assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
        # placed on that primary itself, not reached through a redirection
        assert place_of(node.client(), event_id, "spread") is not None
    assert gateway.reroutes("moved") == gateway.reroutes("ask") == 0
    assert gateway.fallbacks("redis") == 0


def _node_id(node: RedisNode) -> str:
    with node.client() as c:
        node_id: bytes = c.execute_command("CLUSTER", "MYID")
        return node_id.decode()


def test_a_resharded_slot_is_followed_while_it_moves_and_after(
    cluster: Cluster, client: RedisCluster, gateway: Gateway
):
    source, target, third = _primaries(cluster)
    event_id = _event_on(cluster, source, 2000)
    slot = _slot(event_id)
    assert slot != key_slot((Settings().redis_prefix + "queue:events").encode())
    publish_events(client, event_id)
    # The gateway learns its slot map here: the slot is the source's.
    assert gateway.join(event_id, "mover")[:2] == (200, GATEWAY)
    # Every key PLACE names for "mover" exists: during a migration Redis serves a command
    # of several keys only where all of them are (else TRYAGAIN, whichever node).
    with source.client() as c:
        c.zadd(queue_key(event_id, "pre"), {"someone early": 1})
        c.zadd(queue_key(event_id, "active"), {"someone admitted": 1})
        c.zadd(queue_key(event_id, "departed"), {"someone gone": 1})
        c.set(queue_key(event_id, f"rl:user:mover-{RUN_ID}"), "0", px=60_000)
        c.set(queue_key(event_id, "rl:ip:127.0.0.1"), "0", px=60_000)

    source_id, target_id = _node_id(source), _node_id(target)
    with target.client() as t, source.client() as s:
        t.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        s.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)

    # Migrating: the source answers ASK for keys it no longer has; the target serves them
    # after ASKING.
    status, answered_by, body = gateway.join(event_id, "mover")
    assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
    assert gateway.reroutes("ask") >= 1
    # A new fan's rate-limit key is nowhere yet: Redis answers TRYAGAIN, and the join goes
    # to the waitingroom rather than being guessed at.
    assert gateway.join(event_id, "newcomer")[:2] == (502, None)
    assert gateway.fallbacks("redis") == 1

    for node in (target, source, third):
        with node.client() as c:
            c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    # Moved: the source answers MOVED; the gateway's map said the source until then.
    status, answered_by, body = gateway.join(event_id, "newcomer")
    assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
    assert gateway.reroutes("moved") >= 1
    assert place_of(target.client(), event_id, "newcomer") is not None
    assert gateway.join(event_id, "after the move")[:2] == (200, GATEWAY)
    assert gateway.fallbacks("redis") == 1


def test_a_primary_without_place_passes_its_joins_until_it_is_loaded_again(
    cluster: Cluster, client: RedisCluster, gateway: Gateway
):
    """A replica promoted, or a node new to the cluster, has no scripts (Redis 7 keeps
    them on the node that loaded them). The gateway passes those joins to the waitingroom,
    whose cluster client loads PLACE on every primary at its first NOSCRIPT."""
    flushed, other, _ = _primaries(cluster)
    lost, kept = _event_on(cluster, flushed, 3000), _event_on(cluster, other, 3000)
    publish_events(client, lost, kept)
    with flushed.client() as c:
        c.script_flush()
    assert gateway.join(lost, "no script")[:2] == (502, None)
    assert gateway.fallbacks("redis") == 1
    assert gateway.join(kept, "no script")[:2] == (200, GATEWAY)
    client.script_load(PLACE)
    assert gateway.join(lost, "no script")[:2] == (200, GATEWAY)


def test_a_join_no_node_can_place_goes_to_the_waitingroom(
    tmp_path: Path, cluster: Cluster, client: RedisCluster, gateway: Gateway
):
    """The controls: the same joins a gateway on the live cluster answers, passed on by a
    gateway that reaches no node, and by this one for the slot of a primary that died
    (no replica to take over: the cluster serves every other slot)."""
    down, up, _ = _primaries(cluster)
    lost, kept = _event_on(cluster, down, 4000), _event_on(cluster, up, 4000)
    publish_events(client, lost, kept)
    assert gateway.join(lost, "control")[:2] == (200, GATEWAY)

    nowhere = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with running_gateway(tmp_path / "nowhere", nowhere) as cut_off:
        assert cut_off.join(lost, "control")[:2] == (502, None)
        assert cut_off.fallbacks("redis") == 1

    down.kill()
    try:
        assert gateway.join(lost, "dead primary")[:2] == (502, None)
        assert gateway.reroutes("unreachable") >= 1
        assert gateway.join(kept, "dead primary")[:2] == (200, GATEWAY)
    finally:
        down.start()
        cluster.wait_ok(30)

"""The gateway's join on a primary that Sentinel manages (deploy/redis_cluster.py's set: a
primary, two replicas, three sentinels): it answers joins on the primary the sentinels
name, and follows a failover, whether the old primary lives on as a replica (its writes
answer READONLY) or is gone (it refuses connections). Its one worker keeps the primary it
was told until either happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

from deploy.redis_cluster import RedisNode, SentinelSet, free_ports
from tests.e2e.gateway_redis import GATEWAY, place_of, publish_events, running_gateway
from tests.support import wait_until
from waitingroom.queue.scripts import PLACE

pytestmark = pytest.mark.slow

EVENT = 7


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    setup = SentinelSet.layout(tmp_path_factory.mktemp("redis-sentinel"), free_ports(6))
    try:
        setup.up()
        yield setup
    finally:
        setup.down()


def _waitingroom(setup: SentinelSet) -> redis.Redis:
    """What a waitingroom process holds: redis-py's client of Sentinel's primary."""
    sentinel = Sentinel([s.address for s in setup.sentinels if s.running], socket_timeout=2)
    client: redis.Redis = sentinel.master_for(setup.service, socket_timeout=2)
    return client


def _role(node: RedisNode) -> str:
    with node.client() as c:
        return str(c.info("replication")["role"])


def _failed_over(setup: SentinelSet, old: RedisNode) -> RedisNode:
    """The primary the sentinels name once it is another than ``old``, says so itself, and
    the waitingroom's client finds it too (redis-py reads SENTINEL MASTERS, which names
    the new primary only once the failover is over; the gateway's question names it as
    soon as it is promoted). ``old``, if it runs, is made its replica at once: what the
    sentinels do next, once they see it (they look at a node every 10 s)."""
    found: list[RedisNode] = []

    def done() -> bool:
        try:
            new = setup.primary()
            found[:] = [new]
            with _waitingroom(setup) as client:
                seen = client.connection_pool.get_master_address()
            return new is not old and _role(new) == "master" and seen == new.address
        except (redis.RedisError, StopIteration):
            return False

    wait_until(done, 30, "the failover")
    if old.running:
        with old.client() as c:
            c.replicaof(*found[0].address)
    return found[0]


def test_joins_follow_the_primary_through_failovers(sentinels: SentinelSet, tmp_path: Path):
    with _waitingroom(sentinels) as client:
        publish_events(client, EVENT)
    first = sentinels.primary()
    with running_gateway(tmp_path / "gateway", sentinels.url()) as gateway:
        status, answered_by, body = gateway.join(EVENT, "before")
        assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
        assert place_of(first.client(), EVENT, "before") is not None

        # A failover the sentinels are told to make: the old primary stays, as a replica.
        with sentinels.sentinels[0].client() as s:
            s.execute_command("SENTINEL", "FAILOVER", sentinels.service)
        second = _failed_over(sentinels, first)
        # The gateway still holds the old primary: its write answers READONLY, the
        # sentinels are asked again, and the new primary has no PLACE yet (Redis keeps no
        # script on a replica): the join goes to the waitingroom, whose client loads it.
        assert gateway.join(EVENT, "between")[:2] == (502, None)
        assert gateway.reroutes("readonly") == 1
        with _waitingroom(sentinels) as client:
            client.script_load(PLACE)
        status, answered_by, body = gateway.join(EVENT, "between")
        assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
        assert place_of(second.client(), EVENT, "between") is not None
        assert place_of(second.client(), EVENT, "before") is not None  # replicated

        # The primary lost: the gateway's refuses connections, and the sentinels name
        # another once they agree it is down.
        second.kill()
        third = _failed_over(sentinels, second)
        with _waitingroom(sentinels) as client:
            client.script_load(PLACE)
        status, answered_by, body = gateway.join(EVENT, "after")
        assert (status, answered_by, body["status"]) == (200, GATEWAY, "waiting"), body
        assert gateway.reroutes("unreachable") >= 1
        assert place_of(third.client(), EVENT, "after") is not None
        assert gateway.fallbacks("redis") == 1

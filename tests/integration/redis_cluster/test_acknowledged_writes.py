"""A queue tick's admissions are on a replica before any fan hears of them
(ticketing/redis_acked.py): WAIT goes in one pipeline with the script, on the node of the
keys' slot, and says how many replicas have the script's writes.

Shown with the replica frozen (SIGSTOP, shorter than the cluster's node timeout, so no
failover): the wait runs out and says no replica has the write. The control: the same
script run without the wait answers at once, the primary having taken a write no replica
has; that is the window a failover loses an admission in."""

from __future__ import annotations

import os
import secrets
import signal
import time

from redis.crc import key_slot

from deploy.redis_cluster import Cluster
from ticketing.redis_acked import run_acknowledged
from ticketing.redis_connect import connect_redis

INCR = "return redis.call('INCR', KEYS[1])"


async def test_a_write_is_acknowledged_only_once_a_replica_has_it(redis_cluster: Cluster) -> None:
    client = connect_redis(redis_cluster.url(), timeout=2)
    try:
        script = client.register_script(INCR)
        key = f"tk-acked:{{{secrets.randbelow(10**9)}}}:n"
        reply, acked = await run_acknowledged(client, script, [key], [], 1, 1000)
        assert (reply, acked) == (1, 1)

        primary = redis_cluster.primary_of(key_slot(key.encode()))
        replica_port = next(
            port
            for port, role in redis_cluster.roles().items()
            if role["role"] == "slave" and role["primary"] == primary.port
        )
        replica = redis_cluster.node(replica_port)
        assert replica.pid is not None
        os.killpg(replica.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            reply, acked = await run_acknowledged(client, script, [key], [], 1, 300)
            waited = time.monotonic() - started
            assert (reply, acked) == (2, 0)  # written, and no replica has it
            assert waited >= 0.29

            started = time.monotonic()
            assert await script(keys=[key]) == 3  # the control: taken, and nothing waited
            assert time.monotonic() - started < 0.2
        finally:
            os.killpg(replica.pid, signal.SIGCONT)
        reply, acked = await run_acknowledged(client, script, [key], [], 1, 2000)
        assert (reply, acked) == (4, 1)  # thawed: the replica has all of it
    finally:
        await client.aclose()

"""Connecting to Redis: one server, a Redis Cluster, or a primary that Sentinel manages,
as ``TICKETING_REDIS_URL`` names it (ticketing.redis_url reads the URL).

:func:`connect_redis` makes the client for the mode, and :func:`probe_redis` tells
``/healthz`` the mode, the nodes and how many are healthy (ticketing.redis_nodes has the
pub/sub that outlives a node).
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from ticketing.health import EngineState
from ticketing.redis_nodes import on_any_node
from ticketing.redis_url import parse_redis_url

# What every service holds: redis-py's Redis (one server, or Sentinel's primary) and
# RedisCluster share the command methods, register_script and pipeline(transaction=False).
RedisClient: TypeAlias = Redis | RedisCluster

# A node that Sentinel or the cluster itself flags so is not serving.
_DOWN_FLAGS = frozenset({"fail", "fail?", "s_down", "o_down", "disconnected", "noaddr"})


class _SentinelPrimary(Redis):
    """Sentinel's primary: closing it closes the connections to the sentinels too (the
    pool it shares with them is not the client's to close otherwise)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                await sentinel.aclose()


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's primary, with a pool that waits for a free connection (as the single
    server's BlockingConnectionPool does) instead of failing the call."""


def connect_redis(
    url: str,
    *,
    timeout: float,
    max_connections: int | None = None,
    wait_for_connection: bool = False,
) -> RedisClient:
    """A client for the target ``url`` names (nothing is connected until first used).

    ``timeout`` bounds each connect and each reply; ``max_connections`` caps the pool (per
    node in a cluster); ``wait_for_connection``: a call finding every connection busy waits
    up to ``timeout`` for one instead of failing. A cluster's pools cannot wait (redis-py
    has no blocking cluster pool); there the cap is per node, so the cluster as a whole
    holds that many times its primaries."""
    target = parse_redis_url(url)
    sockets: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    pool: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections}
    if target.mode == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            password=target.password,
            # A shard lost with no replica to take over stops its own events only: the
            # client still starts, and serves the slots that have a node.
            require_full_coverage=False,
            **sockets,
            **pool,
        )
    if target.mode == "sentinel":
        assert target.service is not None  # noqa: S101 - parse_redis_url guarantees it
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=dict(sockets), **sockets)
        if wait_for_connection:
            pool.update(connection_pool_class=_BlockingSentinelPool, timeout=timeout)
        client: Redis = sentinel.master_for(
            target.service, _SentinelPrimary, password=target.password, db=target.db, **pool
        )
        return client
    if wait_for_connection:
        # The client owns the pool: closing it closes the connections.
        return Redis.from_pool(
            BlockingConnectionPool.from_url(url, timeout=timeout, **sockets, **pool)
        )
    return Redis.from_url(url, **sockets, **pool)


async def probe_redis(client: RedisClient) -> EngineState:
    """The shape, from what answers: a cluster's every node (primaries and replicas) as CLUSTER
    NODES lists them, healthy unless flagged failing or disconnected; Sentinel's primary and
    the replicas the sentinels know, healthy unless down; one server alone otherwise."""
    if isinstance(client, RedisCluster):
        nodes: dict[str, dict[str, Any]] = await on_any_node(
            client, lambda node: client.execute_command("CLUSTER NODES", target_nodes=node)
        )
        up = [n for n in nodes.values() if n["connected"] and not _down(str(n["flags"]))]
        return EngineState("cluster", len(nodes), len(up))
    await client.ping()
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return await _sentinel_state(pool)
    return EngineState("single", 1, 1)


async def _sentinel_state(pool: SentinelConnectionPool) -> EngineState:
    sentinel: Sentinel = pool.sentinel_manager
    failure: Exception = ConnectionError("no sentinel")
    for node in sentinel.sentinels:  # the first that answers
        try:
            primary = cast(dict[str, Any], await node.sentinel_master(pool.service_name))
            replicas: list[dict[str, Any]] = await node.sentinel_slaves(pool.service_name)
        except Exception as exc:  # the next sentinel may know
            failure = exc
            continue
        states = [primary, *replicas]
        healthy = [
            s for s in states if not (s["is_sdown"] or s["is_odown"] or s["is_disconnected"])
        ]
        return EngineState("sentinel", len(states), len(healthy))
    raise failure


def _down(flags: str) -> bool:
    return bool(_DOWN_FLAGS.intersection(flags.split(",")))

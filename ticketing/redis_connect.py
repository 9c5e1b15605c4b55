"""Connecting to Redis: one server, a Redis Cluster, or a primary that Sentinel manages.

``TICKETING_REDIS_URL`` chooses the mode by its scheme:

- ``redis://[:password@]host:port[/db]``: one server (any URL redis-py takes, as before);
- ``redis+cluster://[:password@]host1:port1,host2:port2,...``: a Redis Cluster, found from
  these seed nodes (any live one will do; the client learns the rest); only db 0 exists;
- ``redis+sentinel://[:password@]s1:p1,s2:p2,.../<master-name>[/db]``: the primary the
  sentinels name for ``<master-name>``; the password is the data nodes', not the
  sentinels'.

:func:`connect_redis` makes the client for the mode, and :func:`probe_redis` tells
``/healthz`` the mode, the nodes and how many are healthy (ticketing.redis_nodes has the
pub/sub that outlives a node).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeAlias, cast
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from ticketing.health import EngineState
from ticketing.redis_nodes import on_any_node
from ticketing.settings_schema import ConfigError

# What every service holds: redis-py's Redis (one server, or Sentinel's primary) and
# RedisCluster share the command methods, register_script and pipeline(transaction=False).
RedisClient: TypeAlias = Redis | RedisCluster

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
_DEFAULT_PORT = {CLUSTER_SCHEME: 6379, SENTINEL_SCHEME: 26379}
_NODE = re.compile(r"^(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")
# A node that Sentinel or the cluster itself flags so is not serving.
_DOWN_FLAGS = frozenset({"fail", "fail?", "s_down", "o_down", "disconnected", "noaddr"})


@dataclass(frozen=True)
class RedisTarget:
    mode: str  # "single" | "cluster" | "sentinel"
    nodes: tuple[tuple[str, int], ...]  # the server; the cluster's seeds; the sentinels
    password: str | None
    db: int
    service: str | None  # sentinel's master name


def parse_redis_url(url: str, name: str = "TICKETING_REDIS_URL") -> RedisTarget:
    """The target ``url`` names; :class:`ConfigError` (naming ``name``, never the
    password) when it names none."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(f"{name} must be a URL such as redis://host:6379/0, {_FORMS}")
    if scheme in SINGLE_SCHEMES:
        return _single(url.strip(), name)
    if scheme not in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        raise ConfigError(f"{name} has an unknown scheme {scheme!r}; {_FORMS}")
    if "?" in rest or "#" in rest:
        raise ConfigError(f"{name}: {scheme}:// takes no query or fragment")
    userinfo, at, hostpath = rest.rpartition("@")
    password = _password(userinfo, name) if at else None
    hosts, _, path = hostpath.partition("/")
    nodes = _nodes(hosts, _DEFAULT_PORT[scheme], name)
    parts = [p for p in path.split("/") if p]
    if scheme == CLUSTER_SCHEME:
        if parts and parts != ["0"]:
            raise ConfigError(f"{name}: a Redis Cluster has only db 0, got /{'/'.join(parts)}")
        return RedisTarget("cluster", nodes, password, 0, None)
    if not parts or len(parts) > 2:
        raise ConfigError(f"{name}: redis+sentinel:// must end in /<master-name>[/db]")
    db = _db(parts[1], name) if len(parts) == 2 else 0
    return RedisTarget("sentinel", nodes, password, db, unquote(parts[0]))


_FORMS = (
    "one of redis://[:password@]host:port[/db], "
    "redis+cluster://[:password@]host1:port1,host2:port2,... or "
    "redis+sentinel://[:password@]s1:p1,s2:p2,.../<master-name>[/db]"
)


def _single(url: str, name: str) -> RedisTarget:
    try:
        kwargs = parse_url(url)
    except ValueError as exc:
        said = str(exc)
        if "@" in url and url.rpartition("@")[0] in said:
            said = "not a URL redis-py accepts"  # it quoted the URL, password and all
        raise ConfigError(f"{name}: {said}; {_FORMS}") from None
    host = str(kwargs.get("path") or kwargs.get("host") or "127.0.0.1")
    port = int(kwargs.get("port") or 6379) if "path" not in kwargs else 0
    password = kwargs.get("password")
    return RedisTarget("single", ((host, port),), password, int(kwargs.get("db") or 0), None)


def _password(userinfo: str, name: str) -> str:
    user, colon, password = userinfo.partition(":")
    if not colon:
        raise ConfigError(f"{name}: the password goes after a colon, as :password@")
    if user:
        raise ConfigError(f"{name}: give the password alone, as :password@ (no user name)")
    return unquote(password)


def _nodes(hosts: str, default_port: int, name: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for raw in hosts.split(","):
        match = _NODE.match(raw.strip())
        port = int(match["port"]) if match and match["port"] else default_port
        if match is None or not 0 < port < 65536:
            raise ConfigError(f"{name}: {raw.strip()!r} is not host:port")
        nodes.append((match["ipv6"] or match["host"], port))
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"{name} names a node twice")
    return tuple(nodes)


def _db(raw: str, name: str) -> int:
    if not raw.isdigit():
        raise ConfigError(f"{name}: the db must be a number, got {raw!r}")
    return int(raw)


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

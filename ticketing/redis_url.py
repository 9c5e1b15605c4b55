"""Reading ``TICKETING_REDIS_URL``: which Redis it names (one server, a Redis Cluster's
seed nodes, or the sentinels of a primary) and how to reach it.

Standard library only: deploy/probe.py (through ticketing.config) reads the URL before
the virtualenv exists, on a fresh machine's system Python. ticketing.redis_connect makes
the clients.

- ``redis://[:password@]host:port[/db]``: one server (also ``rediss://`` and
  ``unix://path?db=N``);
- ``redis+cluster://[:password@]host1:port1,host2:port2,...``: a Redis Cluster, found from
  these seed nodes (any live one will do; the client learns the rest); only db 0 exists;
- ``redis+sentinel://[:password@]s1:p1,s2:p2,.../<master-name>[/db]``: the primary the
  sentinels name for ``<master-name>``; the password is the data nodes', not the
  sentinels'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ticketing.settings_schema import ConfigError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
_DEFAULT_PORT = {CLUSTER_SCHEME: 6379, SENTINEL_SCHEME: 26379}
_NODE = re.compile(r"^(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")


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
    """redis://[[user]:password@]host[:port][/db], rediss://..., unix://path[?db=N], as
    redis-py reads them (a ``?db=`` query wins over the path's db)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}: the port is not a number; {_FORMS}") from None
    raw_db = (query.get("db") or [""])[0]
    if not raw_db and parts.scheme.lower() != "unix":
        raw_db = parts.path.lstrip("/")
    db = _db(raw_db, name) if raw_db else 0
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme.lower() == "unix":
        if not parts.path:
            raise ConfigError(f"{name}: unix:// needs the socket's path; {_FORMS}")
        return RedisTarget("single", ((parts.path, 0),), password, db, None)
    host = unquote(parts.hostname or "127.0.0.1")
    return RedisTarget("single", ((host, port or 6379),), password, db, None)


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

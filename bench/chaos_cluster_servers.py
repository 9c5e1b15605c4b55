"""The cluster chaos run's own clusters, on free ports below the ephemeral range and with
their data in a temporary directory, never the machine's shared servers:

- RabbitMQ: three nodes clustered with the first (deploy/rabbitmq_cluster.py); the
  services take every node's URL and declare quorum queues.
- Typesense: three Raft nodes (ticketing/typesense_cluster.py); the catalog reads from any
  healthy node, search_sync writes through any.
- PostgreSQL: a pg_auto_failover formation (deploy/pg_autofailover.py: a monitor, a
  primary and its synchronous standby), the monitor's checks made fast (``fast``) or left
  at pg_auto_failover's own (about 50 s from a lost primary to the promotion); the
  services take the formation's URL (both nodes, ``target_session_attrs=read-write``), the
  catalog reads from either node.
- Redis: a Redis Cluster of three primaries, each with a replica (deploy/redis_cluster.py:
  a node not answering for 5 s is failed over), the services given every node as a seed
  (``redis+cluster://``); with ``redis_mode="sentinel"``, a primary with two replicas
  that three sentinels watch (deploy/redis_sentinel.py; a primary not answering for 5 s,
  as the cluster's node timeout, is failed over), the services given the sentinels
  (``redis+sentinel://``); or, with ``redis_mode="single"``, one private server
  (bench/chaos_servers.py's), which has no node to lose.

Each answers for itself whether a killed node has rejoined.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from bench.chaos_servers import RedisServer
from deploy.pg_autofailover import Formation
from deploy.pg_cluster import pg_bin, run
from deploy.rabbitmq_cluster import Cluster, Node, free_ports
from deploy.redis_cluster import NODE_TIMEOUT_MS, RedisNode
from deploy.redis_cluster import Cluster as RedisCluster
from deploy.redis_node import wait_for
from deploy.redis_sentinel import SentinelSet
from ticketing.typesense_cluster import ClusterNode, LocalCluster

NODES = 3
# The stack keeps a pool in every process (10 each, the catalog one per node too): more
# than PostgreSQL's default 100 once the fans are in.
MAX_CONNECTIONS = 400


def ports(count: int) -> int:
    """The first of ``count`` free consecutive ports below the ephemeral range, where the
    fans' client sockets cannot take a killed node's port before it comes back."""
    return free_ports(count, 20_000, 32_000)


class FailoverFormation(Formation):
    """deploy/pg_autofailover.py's formation, with a connection limit for a whole stack
    and a lost node's keeper started again."""

    def add_node(self, name: str) -> None:
        if name == "node1":
            # pg_autoctl takes over a data directory that exists; the standby's base
            # backup copies its postgresql.conf, limit included.
            data = self.nodes[name].data_dir
            initdb = [pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            run([*initdb, "-E", "UTF8", "--locale=C", "--no-sync"])
            with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(f"max_connections = {MAX_CONNECTIONS}\n")
        super().add_node(name)

    def rejoin(self, name: str) -> None:
        """Start the lost node's keeper on its data: the monitor makes it the new primary's
        standby (pg_rewind when it must)."""
        self._start(name, "run", "--pgdata", str(self.nodes[name].data_dir))

    def switchover(self) -> None:
        """The standby made primary again, the primary its standby (the monitor's
        orchestrated switchover), waited for."""
        self._autoctl("perform", "switchover", "--monitor", self.monitor_url, "--wait", "60")

    def other(self, name: str) -> str:
        return next(n for n in self.nodes if n != name)

    def settled(self, primary: str) -> bool:
        """``primary`` is the primary and the other node its standby, as the monitor says."""
        standby = self.other(primary)
        wanted = {primary: ("primary", "primary"), standby: ("secondary", "secondary")}
        return self._state_or_none() == wanted


class ClusterServers:
    """The clusters, started by start() and stopped (their directory removed) by close()."""

    def __init__(
        self, root: Path, *, fast_failover: bool = True, redis_mode: str = "cluster"
    ) -> None:
        self.root = root
        os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its directory
        # One block of ports for the clusters: RabbitMQ's AMQP and distribution ports,
        # Typesense's API and peering ports, the monitor's and the two nodes', and the Redis
        # nodes' client and bus ports.
        first = ports(4 * NODES + 3 + 4 * NODES)
        self.rabbitmq = Cluster.layout(
            root / "rabbitmq", first, NODES, prefix=f"tkcc{os.getpid()}-"
        )
        first += 2 * NODES
        self.typesense = LocalCluster(
            [
                ClusterNode(first + 2 * i, first + 2 * i + 1, root / "typesense" / f"node-{i}")
                for i in range(NODES)
            ],
            "chaos-" + secrets.token_hex(8),
            root / "typesense" / "nodes",
        )
        first += 2 * NODES
        self.postgres = FailoverFormation(root / "postgres", first, fast=fast_failover)
        first += 3
        self.redis_cluster = (
            RedisCluster.layout(root / "redis-cluster", first, NODES, 1)
            if redis_mode == "cluster"
            else None
        )
        self.redis_sentinel = (
            SentinelSet.layout(root / "redis-sentinel", first, down_after_ms=NODE_TIMEOUT_MS)
            if redis_mode == "sentinel"
            else None
        )
        self.redis = RedisServer(root) if redis_mode == "single" else None
        self.start_seconds: dict[str, float] = {}

    def start(self) -> None:
        began = time.monotonic()
        self.postgres.create()
        self.start_seconds["postgres"] = time.monotonic() - began
        began = time.monotonic()
        if self.redis_setup is not None:
            self.redis_setup.up()
        elif self.redis is not None:
            self.redis.start()
        self.start_seconds["redis"] = time.monotonic() - began
        began = time.monotonic()
        self.typesense.start()  # elects its leader while RabbitMQ starts
        self.rabbitmq.up()
        self.start_seconds["rabbitmq"] = time.monotonic() - began
        self.typesense.wait_ready(60)
        self.start_seconds["typesense"] = time.monotonic() - began

    def close(self, keep: bool = False) -> None:
        self.typesense.stop()
        for node in self.rabbitmq.nodes:
            node.stop()
        if keep and self.redis_sentinel is not None:  # killed, their files (logs) kept
            for kept in [*self.redis_sentinel.data, *self.redis_sentinel.sentinels]:
                kept.kill()
        elif keep and self.redis_cluster is not None:
            for kept in self.redis_cluster.nodes:
                kept.kill()
        elif self.redis_setup is not None:
            self.redis_setup.down()
        elif self.redis is not None:
            self.redis.stop(signal.SIGTERM)
        self.postgres.remove()  # stops its servers; removes its own directory
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def primary_url(self, database: str) -> str:
        """The first primary's own URL (the database is created and migrated on it)."""
        return self.postgres.nodes["node1"].url(database)

    def node_urls(self, database: str) -> str:
        return " ".join(node.url(database) for node in self.postgres.nodes.values())

    @property
    def redis_url(self) -> str:
        if self.redis_setup is not None:
            return self.redis_setup.url()
        assert self.redis is not None
        return self.redis.url

    # -- Redis ---------------------------------------------------------------------------

    @property
    def redis_setup(self) -> RedisCluster | SentinelSet | None:
        """The Redis with nodes to lose (None: the one server)."""
        return self.redis_cluster or self.redis_sentinel

    def first_redis_url(self) -> str:
        """The plain URL of the Sentinel set's first primary, as a single-server setup
        would know it (the control's)."""
        assert self.redis_sentinel is not None
        return f"redis://127.0.0.1:{self.redis_sentinel.data[0].port}/0"

    def event_primary(self, event_id: int) -> RedisNode:
        """The Redis node serving the slot of the event's queue (its keys' hash tag is
        ``{<event_id>}``: waitingroom/queue/store_keys.py); with Sentinel, the primary the
        sentinels name."""
        if self.redis_sentinel is not None:
            return self.redis_sentinel.primary()
        assert self.redis_cluster is not None
        return self.redis_cluster.primary_of(key_slot(f"{{{event_id}}}".encode()))

    def members(self, key: str, event_id: int) -> set[str]:
        """The members of one of the event's sorted sets (``key``: its full name)."""
        return set(self.scores(key, event_id))

    def scores(self, key: str, event_id: int) -> dict[str, float]:
        """One of the event's sorted sets (``key``: its full name), member -> score."""
        if self.redis_setup is None:
            client = redis.Redis.from_url(self.redis_url)
        else:
            client = self.event_primary(event_id).client()
        with client:
            pairs = client.zrange(key, 0, -1, withscores=True)
            return {str(m, "utf-8"): float(v) for m, v in pairs if isinstance(m, bytes)}

    def redis_rejoined(self, node: RedisNode) -> bool:
        """``node`` is back as a replica, in sync with its primary, in a cluster that is ok
        (with Sentinel: of the primary the sentinels name, each of them seeing it up)."""
        if self.redis_sentinel is not None:
            return self.sentinel_rejoined(node)
        assert self.redis_cluster is not None
        role = self.redis_cluster.roles()[node.port]
        if role["failed"] or role["role"] != "slave":
            return False
        if node.info("replication").get("master_link_status") != "up":
            return False
        with node.client() as client:
            return bool(client.cluster("INFO").get("cluster_state") == "ok")

    def sentinel_rejoined(self, node: RedisNode) -> bool:
        sentinels = self.redis_sentinel
        assert sentinels is not None
        primary = sentinels.primary()
        replication = node.info("replication")
        if primary is node or replication["role"] != "slave":
            return False
        if replication.get("master_link_status") != "up":
            return False
        if int(replication["master_port"]) != primary.port:
            return False
        for sentinel in sentinels.sentinels:
            with sentinel.client() as client:
                seen = client.sentinel_slaves(sentinels.service)
            mine = [r for r in seen if r["port"] == node.port]
            if not mine or mine[0]["is_sdown"] or mine[0]["is_disconnected"]:
                return False
        return True

    def sentinel_failover_to(self, node: RedisNode, timeout: float = 120) -> None:
        """The sentinels made to promote ``node`` (a replica in sync), waited for: the
        other replicas' priority set to 0 (never promoted) until it is done."""
        sentinels = self.redis_sentinel
        assert sentinels is not None
        others = [n for n in sentinels.data if n is not node]

        def priorities(value: int) -> None:
            for other in others:
                with other.client() as client:
                    client.config_set("replica-priority", value)

        def known(value: int) -> bool:  # the sentinels read it from INFO every 10 s
            with sentinels.sentinels[0].client() as client:
                seen = client.sentinel_slaves(sentinels.service)
            ports = {o.port for o in others}
            return all(r["slave-priority"] == value for r in seen if r["port"] in ports)

        priorities(0)
        try:
            wait_for("the sentinels to see the priorities", lambda: known(0), timeout)
            with sentinels.sentinels[0].client() as client:
                client.sentinel_failover(sentinels.service)
            wait_for("the failover", lambda: sentinels.primary() is node, timeout)
            wait_for(
                "the replicas", lambda: all(self.sentinel_rejoined(o) for o in others), timeout
            )
        finally:
            priorities(100)

    # -- RabbitMQ ------------------------------------------------------------------------

    def alive_rabbit(self) -> list[Node]:
        return [node for node in self.rabbitmq.nodes if node.pid is not None]

    def queue_leader(self, queue: str) -> Node | None:
        """The node leading the quorum queue ``queue``, as a live node reports it (None
        while it has none, or while its leader is a node that is down)."""
        alive = self.alive_rabbit()
        for asked in alive:
            try:
                out = asked.ctl("list_queues", "name", "leader", "--formatter", "json", timeout=20)
            except (RuntimeError, OSError):
                continue
            leader = next((q.get("leader") for q in json.loads(out) if q["name"] == queue), None)
            return next((n for n in alive if n.node == leader), None)
        return None

    def rabbit_rejoined(self) -> bool:
        """Every node runs and the cluster counts them all running."""
        if len(self.alive_rabbit()) < NODES:
            return False
        status = json.loads(self.rabbitmq.nodes[0].ctl("cluster_status", "--formatter", "json"))
        return len(status.get("running_nodes", [])) == NODES

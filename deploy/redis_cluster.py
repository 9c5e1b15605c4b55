"""Redis of our own on this machine: a Redis Cluster, or a primary with replicas that
Sentinel manages; for the tests and a local cluster, never the machine's own server.

A cluster is ``primaries * (1 + replicas)`` nodes (``cluster-enabled``, ``appendonly``,
each in its own directory, client ports from ``--port`` on and their bus ports after them),
joined by ``redis-cli --cluster create``; a Sentinel set is a primary, two replicas and
three sentinels (quorum 2) watching it.

    python -m deploy.redis_cluster up --dir .run/redis-cluster --port 7100
    python -m deploy.redis_cluster up --dir .run/redis-sentinel --port 7200 --sentinel
    python -m deploy.redis_cluster down --dir .run/redis-cluster

``up`` prints the ``TICKETING_REDIS_URL`` of what it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.rabbitmq_cluster import free_ports
from deploy.redis_node import REDIS_CLI, STATE, RedisNode, saved, wait_for
from deploy.redis_sentinel import DATA_CONFIG, SentinelSet

__all__ = ["Cluster", "RedisNode", "SentinelSet", "free_ports"]

# A node that stops answering for this long is failed over. Redis's default is 15 s; 5 s
# keeps a lost primary's events waiting less, and tests pass 2 s.
NODE_TIMEOUT_MS = 5000
# The whole keyspace is one slot per event's hash tag, so a shard lost without a replica
# must not stop the events of every other shard: the rest of the cluster keeps serving.
_CLUSTER_CONFIG = ["cluster-require-full-coverage no", *DATA_CONFIG]


@dataclass
class Cluster:
    root: Path
    nodes: list[RedisNode]
    replicas: int

    @classmethod
    def layout(
        cls,
        root: Path,
        port: int,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
    ) -> Cluster:
        """Client ports ``port..port+n-1``, their cluster bus the next ``n`` (take
        ``free_ports(2 * n)``)."""
        root, count = root.resolve(), primaries * (1 + replicas)
        nodes = [
            RedisNode(
                f"node-{port + i}",
                port + i,
                root,
                [
                    "cluster-enabled yes",
                    "cluster-config-file nodes.conf",
                    f"cluster-port {port + count + i}",
                    f"cluster-node-timeout {node_timeout_ms}",
                    *_CLUSTER_CONFIG,
                ],
            )
            for i in range(count)
        ]
        return cls(root, nodes, replicas)

    def url(self) -> str:
        """``TICKETING_REDIS_URL``: every node a seed (any live one will do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def up(self, timeout: float = 60) -> None:
        """Start every node from nothing, make them one cluster, and wait until every node
        says the cluster is ok and every replica is in sync with its primary."""
        shutil.rmtree(self.root, ignore_errors=True)
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.save()
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 60) -> None:
        """Until every running node says ``cluster_state:ok`` and knows every node, the
        cluster has its primaries, and every replica's link to its primary is up."""
        primaries = len(self.nodes) // (1 + self.replicas)

        def ok(node: RedisNode) -> bool:
            with node.client() as client:
                fields: dict[str, str] = client.cluster("INFO")
            if fields.get("cluster_state") != "ok":
                return False
            if int(fields.get("cluster_known_nodes", 0)) != len(self.nodes):
                return False
            replication = node.info("replication")
            return bool(
                replication["role"] == "master" or replication["master_link_status"] == "up"
            )

        def formed() -> bool:
            # As a node sees it: no running node still flagged failed (a node started again
            # is until the others hear from it), a primary per shard, the rest replicas.
            running = {n.port for n in self.nodes if n.running}
            roles = [r for port, r in self.roles().items() if port in running]
            serving = [r for r in roles if r["role"] == "master" and r["slots"]]
            return (
                not any(r["failed"] for r in roles)
                and len(serving) == primaries
                and all(r["role"] == "slave" or r["slots"] for r in roles)
            )

        running = [n for n in self.nodes if n.running]
        wait_for("cluster ok", lambda: formed() and all(ok(n) for n in running), timeout)

    def roles(self) -> dict[int, dict[str, Any]]:
        """By port, as a live node sees it: ``role`` (``master`` or ``slave``), ``primary``
        (a replica's primary's port), ``slots`` and ``failed``."""
        for node in self.nodes:
            if not node.running:
                continue
            with node.client() as client:
                seen: dict[str, dict[str, Any]] = client.cluster("NODES")
            ports = {
                v["node_id"]: int(addr.split(":")[1].split("@")[0]) for addr, v in seen.items()
            }
            return {
                ports[v["node_id"]]: {
                    "role": "master" if "master" in v["flags"] else "slave",
                    "primary": ports.get(v["master_id"]),
                    "slots": v["slots"],
                    "failed": "fail" in v["flags"].split(","),
                }
                for v in seen.values()
            }
        raise RuntimeError("no node of the cluster is running")

    def kill(self, node: RedisNode) -> None:
        """kill -9 one node."""
        node.kill()
        self.save()

    def start(self, node: RedisNode) -> None:
        """Start a killed node again on its data: it rejoins (a primary that was failed over
        comes back as its successor's replica)."""
        node.start()
        self.save()

    def node(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def primary_of(self, slot: int) -> RedisNode:
        """The node serving ``slot`` now."""
        for port, role in self.roles().items():
            serving = role["role"] == "master" and not role["failed"]
            if serving and any(int(lo) <= slot <= int(hi) for lo, hi in role["slots"]):
                return self.node(port)
        raise LookupError(f"no live primary serves slot {slot}")

    def down(self) -> None:
        # Killed, not stopped: the data goes too, and a primary stopped in order waits up
        # to 10 s (shutdown-timeout) for replicas that are going anyway.
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def save(self) -> None:
        state = {"kind": "cluster", "replicas": self.replicas, "nodes": saved(self.nodes)}
        (self.root / STATE).write_text(json.dumps(state))


def stop_saved(root: Path) -> None:
    """Stop what ``up`` started under ``root`` (by the pids it saved) and remove it."""
    root = root.resolve()
    state = json.loads((root / STATE).read_text())
    for node in state["nodes"]:
        RedisNode(node["name"], node["port"], root, [], pid=node["pid"]).kill()
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.redis_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster (or a Sentinel set); print its URL")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--port", type=int, default=0, help="the first (default: free ports)")
    up.add_argument("--primaries", type=int, default=3)
    up.add_argument("--replicas", type=int, default=1, help="per primary")
    up.add_argument("--node-timeout-ms", type=int, default=NODE_TIMEOUT_MS)
    up.add_argument("--sentinel", action="store_true", help="a primary, 2 replicas, 3 sentinels")
    down = sub.add_parser("down", help="stop what up started in --dir and remove it")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "down":
        stop_saved(args.dir)
        return
    setup: Cluster | SentinelSet
    if args.sentinel:
        setup = SentinelSet.layout(args.dir, args.port or free_ports(6))
    else:
        count = args.primaries * (1 + args.replicas)
        port = args.port or free_ports(2 * count)
        setup = Cluster.layout(args.dir, port, args.primaries, args.replicas, args.node_timeout_ms)
    setup.up()
    print(setup.url())


if __name__ == "__main__":
    main()

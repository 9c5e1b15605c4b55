"""A primary with two replicas that three Sentinels watch (quorum 2), all of our own on
this machine (deploy.redis_cluster's CLI starts it with ``--sentinel``): for the tests of a
Sentinel-managed Redis, never the machine's own server."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from deploy.redis_node import DATA_CONFIG, STATE, RedisNode, saved, wait_for

__all__ = ["DATA_CONFIG", "SentinelSet"]


@dataclass
class SentinelSet:
    """A primary and two replicas on ``port..port+2``, three sentinels (quorum 2) on
    ``port+3..port+5`` watching it as ``service``."""

    root: Path
    data: list[RedisNode]
    sentinels: list[RedisNode]
    service: str

    @classmethod
    def layout(
        cls,
        root: Path,
        port: int,
        service: str = "tk-main",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> SentinelSet:
        root = root.resolve()
        replica_of = [f"replicaof 127.0.0.1 {port}"]
        data = [
            RedisNode(f"data-{port + i}", port + i, root, [*DATA_CONFIG, *replica_of * i])
            for i in range(3)
        ]
        watch = [
            f"sentinel monitor {service} 127.0.0.1 {port} 2",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service} 1",
        ]
        sentinels = [
            RedisNode(f"sentinel-{port + 3 + i}", port + 3 + i, root, watch, sentinel=True)
            for i in range(3)
        ]
        return cls(root, data, sentinels, service)

    def url(self) -> str:
        """``TICKETING_REDIS_URL``: the sentinels and the service they watch."""
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{seeds}/{self.service}"

    def up(self, timeout: float = 60) -> None:
        """Start the primary, its replicas and the sentinels; wait until every sentinel
        knows both replicas and the other two sentinels."""
        shutil.rmtree(self.root, ignore_errors=True)
        for node in [*self.data, *self.sentinels]:
            node.start()
        self.save()
        self.wait_watched(timeout)

    def wait_watched(self, timeout: float = 60) -> None:
        def watched(sentinel: RedisNode) -> bool:
            with sentinel.client() as client:
                state = client.sentinel_master(self.service)
            # (A killed node stays counted, flagged down, until it is back.)
            return bool(state["num-slaves"] == 2 and state["num-other-sentinels"] == 2)

        wait_for("sentinels watching", lambda: all(watched(s) for s in self.sentinels), timeout)

    def kill(self, node: RedisNode) -> None:
        """kill -9 one node (a data node or a sentinel)."""
        node.kill()
        self.save()

    def start(self, node: RedisNode) -> None:
        """Start a killed node again: the sentinels make a lost primary a replica."""
        node.start()
        self.save()

    def primary(self) -> RedisNode:
        """The data node a running sentinel names as the primary now."""
        for sentinel in self.sentinels:
            if sentinel.running:
                with sentinel.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(self.service)
                return next(n for n in self.data if n.port == int(port))
        raise RuntimeError("no sentinel is running")

    def down(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def save(self) -> None:
        state = {"kind": "sentinel", "nodes": saved([*self.data, *self.sentinels])}
        (self.root / STATE).write_text(json.dumps(state))

"""Redis of a module's own: a Redis Cluster of 3 primaries with a replica each, and a
Sentinel set (a primary, 2 replicas, 3 sentinels), on free ports in a temporary directory
(deploy/redis_cluster.py), each started once per module that uses it and removed at the
end. Never the machine's own Redis. Failover is quick: a node silent for 2 s is failed
over (cluster-node-timeout), a primary for 1 s (Sentinel's down-after-milliseconds)."""

from __future__ import annotations

import gc
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from deploy.redis_cluster import Cluster, SentinelSet, free_ports
from tests.integration.booking.support import open_client
from tests.support import settings_with
from ticketing.config import Settings

NODE_TIMEOUT_MS = 2000


@pytest.fixture(autouse=True)
def connections_of_killed_nodes_collected() -> Iterator[None]:
    """A node killed under a client leaves that client's connections to it for the garbage
    collector (redis-py drops them and opens new ones; asyncio warns "unclosed" when they
    are collected). Collected here, after each test of this folder, so the warnings come
    neither at random in a later test nor as its failure (they did, in test_sentinel:
    16 connections of earlier modules' clusters, in two runs of two)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tk-redis-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start_cluster(root: Path, primaries: int = 3, replicas: int = 1) -> Cluster:
    count = primaries * (1 + replicas)
    cluster = Cluster.layout(root, free_ports(2 * count), primaries, replicas, NODE_TIMEOUT_MS)
    try:
        cluster.up()
    except BaseException:
        cluster.down()
        raise
    return cluster


@pytest.fixture(scope="module")
def redis_cluster(scratch: Path) -> Iterator[Cluster]:
    cluster = start_cluster(scratch / "cluster")
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def sentinel_set(scratch: Path) -> Iterator[SentinelSet]:
    sentinels = SentinelSet.layout(scratch / "sentinel", free_ports(6))
    try:
        sentinels.up()
        yield sentinels
    finally:
        sentinels.down()


@pytest.fixture(scope="module")
def cluster_settings(queue_settings: Settings, redis_cluster: Cluster) -> Settings:
    return settings_with(queue_settings, redis_url=redis_cluster.url())


@pytest.fixture
async def cluster_client(cluster_settings: Settings, worker: None) -> AsyncIterator[TestClient]:
    """The waitingroom (queue and booking front door) on the cluster."""
    client = await open_client(cluster_settings)
    yield client
    await client.close()

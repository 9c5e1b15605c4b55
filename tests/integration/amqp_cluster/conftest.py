"""A RabbitMQ cluster of this folder's own: three nodes on free ports below the ephemeral
range, in a temporary directory, clustered with the first (deploy/rabbitmq_cluster.py),
stopped and removed at the end. Never the machine's own node. One for the whole folder
(a start costs about 20 s): a test that stops or kills a node starts it again, and each
test's queues have names (or a vhost) of their own."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.rabbitmq_cluster import RABBITMQ_BIN, Cluster, free_ports

NODES = 3


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.fail("RabbitMQ is not installed (make setup installs it)")
    root = Path(tempfile.mkdtemp(prefix="tk-rabbit-"))
    cluster = Cluster.layout(root / "cluster", free_ports(2 * NODES), NODES)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
        root.rmdir()

"""Fixtures of the replica stories: a primary and its streaming replica of the module's own
(a synchronous standby, on free ports, in a temporary directory, removed at the end) with
the schema, and the catalog settings that read from them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.pg_cluster import LocalServer, add_replica, init_primary, remove
from tests.integration.replicas.support import REPLICA, temp_base
from tests.support import free_port, settings_with
from ticketing.config import Settings
from ticketing.db import migrate


@dataclass
class Pair:
    base: Path
    primary: LocalServer
    replica: LocalServer


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if shutil.which("pg_basebackup") is None and not Path("/usr/lib/postgresql").exists():
        pytest.fail("PostgreSQL's programs are not installed (make setup installs them)")
    base = temp_base()
    servers: list[LocalServer] = []
    try:
        primary = init_primary(base, free_port(), synchronous_standby=REPLICA)
        servers.append(primary)
        replica = add_replica(primary, base, free_port(), REPLICA)
        servers.append(replica)
        migrate.create_database(primary.url())
        migrate.upgrade(primary.url())
        yield Pair(base, primary, replica)
    finally:
        remove(base, servers)


@pytest.fixture(scope="module")
def replica_settings(settings: Settings, pair: Pair) -> Settings:
    """The catalog on the pair: its own view cache keys (the ids are the pair's), and a
    lag bound no test's pause reaches unless it means to."""
    return settings_with(
        settings,
        database_url=pair.primary.url(),
        database_replica_urls=pair.replica.url(),
        pg_replica_max_lag_seconds=60.0,
        redis_prefix=f"{settings.redis_prefix}pg{pair.primary.port}:",
        typesense_collection=settings.typesense_collection + "_replicas",
    )

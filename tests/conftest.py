"""Real servers for every test run, each run isolated from every other.

A run gets its own PostgreSQL database, Redis key prefix, RabbitMQ vhost and Typesense
server (own port and data directory), all named after a random run id and removed at the
end, so runs on one machine never see each other's leftovers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from tests.servers import (
    AMQP_BASE,
    PG_BASE,
    REDIS_BASE,
    RUN_ID,
    TYPESENSE_KEY,
    TypesenseServer,
    rabbitmqctl,
)
from ticketing.config import Settings
from ticketing.db import migrate


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = f"{PG_BASE}/tk_test_{RUN_ID}"
    migrate.create_database(url)
    migrate.upgrade(url)
    yield url
    migrate.drop_database(url)


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"tkt{RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_BASE)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    vhost = f"tk_test_{RUN_ID}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def typesense_server() -> Iterator[TypesenseServer]:
    server = TypesenseServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_prefix: str, amqp_url: str, typesense_server: TypesenseServer
) -> Settings:
    return Settings(
        env="dev",
        database_url=database_url,
        redis_url=REDIS_BASE,
        redis_prefix=redis_prefix,
        amqp_url=amqp_url,
        typesense_url=typesense_server.url,
        typesense_api_key=TYPESENSE_KEY,
        typesense_collection=f"events_{RUN_ID}",
        jwt_secret=f"test-secret-{RUN_ID}-{secrets.token_hex(16)}",
        rate_limit_per_minute=100_000,
        rate_limit_burst=10_000,
        sync_batch_wait_ms=20,
        outbox_poll_seconds=0.5,
    )

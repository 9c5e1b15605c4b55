"""The chaos run's own PostgreSQL, Redis and RabbitMQ: private servers on free ports with
their data in a temporary directory, which the run may stop, kill and restart without
touching the machine's shared servers (5432, 6379, 5672) that other test runs and CI use.

- PostgreSQL: ``initdb`` once, then ``postgres -D DIR -p PORT -k DIR`` as the ``postgres``
  user (the server refuses to run as root); a restart is a fast shutdown (SIGINT) and a
  start on the same data directory.
- Redis: ``redis-server --appendonly yes`` (every write in the AOF before its answer leaves,
  so a kill -9 keeps every acknowledged write); the data-lost restart deletes the AOF
  before starting again, the data-kept one starts on it.
- RabbitMQ: a node of its own (``RABBITMQ_NODENAME`` and ports, Mnesia, logs, an empty
  plugins file and config in the directory), run as the current user through
  ``/usr/lib/rabbitmq/bin/rabbitmq-server`` (not the packaged wrapper, which switches to
  the ``rabbitmq`` user); the machine's epmd keeps its name. A restart is SIGTERM (the
  node's orderly stop; durable queues and persistent messages survive) and a start.

Each server's start() returns once it answers (PostgreSQL: a query; Redis: PING; RabbitMQ:
the AMQP protocol header answered), and how long that took.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from bench.surge_setup import consecutive_ports
from deploy.rabbitmq_cluster import RABBITMQ_BIN, Node, answers_amqp

RABBITMQ_SERVER = RABBITMQ_BIN / "rabbitmq-server"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise SystemExit("chaos: no PostgreSQL under /usr/lib/postgresql")
    return versions[-1]


def wait_until(what: str, probe: object, timeout: float) -> float:
    """Seconds until ``probe()`` is true; SystemExit after ``timeout``."""
    assert callable(probe)
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        with contextlib.suppress(Exception):  # not up yet, whatever it says
            if probe():
                return time.monotonic() - began
        time.sleep(0.1)
    raise SystemExit(f"chaos: {what} did not come up in {timeout:.0f} s")


class Server:
    """One private server process: started, stopped with a signal, killed, restarted."""

    name = "server"

    def __init__(self, root: Path) -> None:
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        # Below the ephemeral range: while a restarted server is away, the fans' tens of
        # thousands of client sockets may take any ephemeral port, its own included.
        self.port = consecutive_ports(1)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def user(self) -> str | None:
        return None

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 120) -> float:
        """Start and wait until it answers; the seconds that took."""
        self.starts += 1
        log = (self.dir.parent / f"{self.name}.log").open("ab")
        began = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(),
            env=self.env(),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            user=self.user(),
        )
        log.close()
        wait_until(f"{self.name} on {self.port}", self._answers, timeout)
        return time.monotonic() - began

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemExit(f"chaos: {self.name} exited with {self.proc.returncode}; see its log")
        return self.ready()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Signal the process group and wait for it (SIGKILL after ``timeout``)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class PostgresServer(Server):
    name = "postgres"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.data = self.dir / "data"
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if owner is not None:
            os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its directory
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        initdb = [str(postgres_bin() / "initdb"), "-D", str(self.data), "-U", "postgres"]
        subprocess.run(
            [*initdb, "-E", "UTF8", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
            user=self.user(),
            cwd=self.dir,
            timeout=120,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def argv(self) -> list[str]:
        return [
            str(postgres_bin() / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=400",
        ]

    def ready(self) -> bool:
        with psycopg.connect(self.url + "/postgres", connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    def restart(self) -> float:
        """Fast shutdown (SIGINT: sessions end, nothing waits for them), then start."""
        self.stop(signal.SIGINT)
        return self.start()


class RedisServer(Server):
    name = "redis"

    def argv(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxclients",
            "20000",
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def restart(self, *, keep_data: bool) -> float:
        """kill -9, then start on the AOF (``keep_data``) or on nothing."""
        self.kill()
        if not keep_data:
            for entry in self.dir.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        return self.start()


class RabbitServer(Server):
    name = "rabbitmq"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        # A node as deploy/rabbitmq_cluster.py runs them, alone: its files in this server's
        # directory, which is also its HOME (its own Erlang cookie).
        self.node = Node(f"tkchaos{os.getpid()}", self.port, consecutive_ports(1), root, self.dir)
        self.node.prepare()

    @property
    def url(self) -> str:
        return self.node.url()

    def env(self) -> dict[str, str]:
        return self.node.env()

    def argv(self) -> list[str]:
        if not RABBITMQ_SERVER.exists():
            raise SystemExit(f"chaos: no {RABBITMQ_SERVER} (apt-get install rabbitmq-server)")
        return [str(RABBITMQ_SERVER)]

    def ready(self) -> bool:
        return answers_amqp(self.port)

    def restart(self) -> float:
        self.stop(signal.SIGTERM, timeout=60)
        return self.start()


class PrivateServers:
    """The three, started in a temporary directory, stopped and removed by close()."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = PostgresServer(root)
        self.redis = RedisServer(root)
        self.rabbitmq = RabbitServer(root)
        self.start_seconds: dict[str, float] = {}

    def start(self) -> None:
        for server in (self.postgres, self.redis, self.rabbitmq):
            self.start_seconds[server.name] = server.start()

    def close(self, keep: bool = False) -> None:
        for server in (self.rabbitmq, self.redis, self.postgres):
            server.stop(signal.SIGINT if server is self.postgres else signal.SIGTERM)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

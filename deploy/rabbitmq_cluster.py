"""RabbitMQ nodes of our own on this machine, and a cluster of them.

For the tests and a local cluster; it never touches the machine's own node (its name,
ports, Mnesia and cookie are not ours). Each node is ``rabbitmq-server`` run directly
(``/usr/lib/rabbitmq/bin``, not the packaged wrapper, which switches to the ``rabbitmq``
user) with its name, AMQP and distribution ports, Mnesia, logs, an empty plugin list and a
config of its own; the nodes of one directory share an Erlang cookie (``HOME`` is the
directory, which holds ``.erlang.cookie``), and the second node on joins the first
(``rabbitmqctl join_cluster``). Ports stay below the ephemeral range: a restarted node's
port must still be free when it comes back.

    python -m deploy.rabbitmq_cluster up --dir .run/rabbitmq-cluster --port 5701 --nodes 3
    python -m deploy.rabbitmq_cluster down --dir .run/rabbitmq-cluster

``up`` prints the nodes' URLs, space-separated: a ``TICKETING_AMQP_URL`` for the cluster
(with ``TICKETING_AMQP_QUEUE_TYPE=quorum``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
STATE = "cluster.json"


def free_ports(count: int, low: int = 12_000, high: int = 30_000) -> int:
    """The first of ``count`` consecutive free ports between ``low`` and ``high``: below the
    kernel's ephemeral range (32768+), where clients' sockets take theirs."""
    for _ in range(200):
        first = random.randrange(low, high - count)  # noqa: S311 - a port, no secret
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")


def answers_amqp(port: int, timeout: float = 2) -> bool:
    """Whether a node takes AMQP connections on ``port`` (its connection.start arrives)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(8)[:1] == b"\x01"  # a method frame
    except OSError:
        return False


@dataclass
class Node:
    """One node: ``name@localhost`` taking AMQP on ``port`` and its peers on
    ``dist_port``, its files under ``root/name``, the cookie in ``home``."""

    name: str
    port: int
    dist_port: int
    root: Path
    home: Path
    pid: int | None = None
    # The node started here (None when another process started it: ``down`` from the CLI).
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def url(self, vhost: str = "") -> str:
        """RabbitMQ's own login, which a fresh node takes from loopback only."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def env(self) -> dict[str, str]:
        d = str(self.dir)
        return {
            **os.environ,
            "HOME": str(self.home),  # the cluster's cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_PID_FILE": f"{d}/rabbitmq.pid",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/advanced.config",
            "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbitmq-env.conf",
        }

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[].\n")
        # pause_minority: a node cut off from the majority stops serving rather than
        # diverging (the setting RabbitMQ recommends for clusters of three or more).
        (self.dir / "rabbitmq.conf").write_text(
            "log.console = false\ncluster_partition_handling = pause_minority\n"
        )
        (self.dir / "rabbitmq-env.conf").write_text("")

    def start(self, timeout: float = 120) -> float:
        """Start and wait until it takes AMQP connections; the seconds that took."""
        began = time.monotonic()
        with (self.root / f"{self.name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self.env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.proc, self.pid = proc, proc.pid
        while not answers_amqp(self.port):
            if proc.poll() is not None:
                raise RuntimeError(f"{self.node} exited with {proc.returncode}; see its log")
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{self.node} did not come up in {timeout:.0f} s")
            time.sleep(0.1)
        return time.monotonic() - began

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <this node> args...``; its output, or an error with it."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def signal(self, signum: int, timeout: float = 60) -> None:
        """Signal the node's process group and wait until it is gone."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)
        deadline = time.monotonic() + timeout
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)  # reaped: gone, and no warning about it later
        self.proc, self.pid = None, None

    def kill(self) -> None:
        """kill -9: what a lost machine looks like to the others."""
        self.signal(signal.SIGKILL, timeout=10)

    def stop(self) -> None:
        """An orderly stop (SIGTERM)."""
        self.signal(signal.SIGTERM)

    def _alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:  # started by another process (the CLI's up): ask the kernel
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True


@dataclass
class Cluster:
    """Nodes ``<prefix>1..n`` taking AMQP on ports ``port..port+n-1`` (their peers on the
    next ``n``), clustered with the first."""

    root: Path
    nodes: list[Node]

    @classmethod
    def layout(cls, root: Path, port: int, count: int, prefix: str = "tk-rabbit") -> Cluster:
        root = root.resolve()
        home = root / "home"
        nodes = [
            Node(f"{prefix}{i + 1}-{port}", port + i, port + count + i, root, home)
            for i in range(count)
        ]
        return cls(root, nodes)

    @property
    def urls(self) -> str:
        """``TICKETING_AMQP_URL`` for the cluster: every node, space-separated."""
        return " ".join(node.url() for node in self.nodes)

    def up(self) -> None:
        """Start every node from nothing and cluster them (a directory left by an earlier
        cluster is removed first: a node's Mnesia remembers its cluster)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        home = self.nodes[0].home
        home.mkdir(parents=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        first, *others = self.nodes
        for node in self.nodes:
            node.prepare()
        first.start()
        for node in others:
            node.start()
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
            while not answers_amqp(node.port):
                time.sleep(0.1)
        self.save()

    def down(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def save(self) -> None:
        state = [
            {"name": n.name, "port": n.port, "dist_port": n.dist_port, "pid": n.pid}
            for n in self.nodes
        ]
        (self.root / STATE).write_text(json.dumps(state))

    @classmethod
    def load(cls, root: Path) -> Cluster:
        root = root.resolve()
        state = json.loads((root / STATE).read_text())
        nodes = [
            Node(s["name"], s["port"], s["dist_port"], root, root / "home", s["pid"]) for s in state
        ]
        return cls(root, nodes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.rabbitmq_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster and print its TICKETING_AMQP_URL")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--port", type=int, default=5701, help="the first node's; 2 per node")
    up.add_argument("--nodes", type=int, default=3)
    down = sub.add_parser("down", help="stop the cluster of --dir and remove it")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        cluster = Cluster.layout(args.dir, args.port, args.nodes)
        cluster.up()
        print(cluster.urls)
    else:
        Cluster.load(args.dir).down()


if __name__ == "__main__":
    main()

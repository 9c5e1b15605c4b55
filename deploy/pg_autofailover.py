"""A pg_auto_failover formation of our own on this machine: a monitor and two PostgreSQL
nodes (a primary and its synchronous standby), each run by its ``pg_autoctl`` keeper, on
ports and in a directory of their own.

The monitor watches the nodes; when the primary stops answering it promotes the standby
(after ``node_considered_unhealthy_timeout`` and ``primary_demote_timeout``, 20 s and 30 s
by default; ``fast=True`` makes them 2 s and 3 s, for tests). Services reach whichever
node is the primary through the formation's URL, which lists both nodes with
``target_session_attrs=read-write`` (``uri()``). With a standby, commits are synchronous
(``synchronous_standby_names = 'ANY 1 (...)'``, ``synchronous_commit = on``): a commit
acknowledged to a client is on the standby's disk, so the promotion loses none.

Debian's packages: ``pg-auto-failover-cli`` and ``postgresql-<version>-auto-failover``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from deploy.pg_cluster import LocalServer, as_owner, own, pg_bin

# The monitor's health checks, for tests that kill a whole node: a dead primary is noticed
# in about 2 s and the standby promoted 3 s later. Never in production: the monitor waits
# primary_demote_timeout for an old primary that is only cut off to demote itself, which
# its keeper does after network_partition_timeout (20 s) alone.
FAST_MONITOR = {
    "pgautofailover.health_check_period": "500",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "200",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.primary_demote_timeout": "3000",
    "pgautofailover.startup_grace_period": "1000",
}


class Formation:
    """Monitor on ``port``, nodes ``node1`` and ``node2`` on the next two ports."""

    def __init__(self, base: Path, port: int, *, fast: bool = False) -> None:
        self.base = base
        self.port = port
        self.fast = fast
        self.nodes = {f"node{i}": LocalServer(base / f"node{i}", port + i) for i in (1, 2)}
        self.keepers: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(base / "config"),
            "XDG_DATA_HOME": str(base / "data"),
            "XDG_RUNTIME_DIR": str(base / "run"),
        }

    @property
    def monitor_url(self) -> str:
        return f"postgresql://autoctl_node@127.0.0.1:{self.port}/pg_auto_failover?sslmode=disable"

    def uri(self, database: str = "ticketing") -> str:
        """The services' URL: both nodes, the one that takes writes chosen at connect."""
        hosts = ",".join(node.name for node in self.nodes.values())
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def create(self) -> None:
        """Monitor, then node1 (the primary), then node2 (a base backup of node1, its
        standby); returns once node1 is primary and node2 its synchronous secondary."""
        self.base.mkdir(parents=True, exist_ok=True)
        own(self.base)
        self._autoctl(
            "create", "monitor", "--pgdata", str(self.base / "monitor"), "--pgport",
            str(self.port), "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl",
            "--pgctl", pg_bin("pg_ctl"),
        )  # fmt: skip
        self._autoctl(
            "config", "set", "--pgdata", str(self.base / "monitor"),
            "postgresql.listen_addresses", "127.0.0.1",
        )  # fmt: skip
        self._start("monitor", "run", "--pgdata", str(self.base / "monitor"))
        self._wait(lambda: self._monitor_ready(), 30, "the monitor")
        if self.fast:
            self._tune_monitor()
        for name in self.nodes:
            self.add_node(name)
        # node1 turns primary (standby synchronous) a moment after node2 is a secondary;
        # until then (wait_primary) its commits do not wait for node2.
        settled = {"node1": ("primary", "primary"), "node2": ("secondary", "secondary")}
        self._wait(lambda: self._state_or_none() == settled, 30, "the formation to settle")

    def add_node(self, name: str) -> None:
        """Create the node and run its keeper (one process: ``create ... --run``)."""
        node = self.nodes[name]
        self._start(
            name,
            "create", "postgres", "--pgdata", str(node.data_dir), "--pgport", str(node.port),
            "--listen", "127.0.0.1", "--hostname", "127.0.0.1", "--name", name,
            "--dbname", "ticketing", "--auth", "trust", "--no-ssl", "--pgctl",
            pg_bin("pg_ctl"), "--monitor", self.monitor_url, "--run",
        )  # fmt: skip
        wanted = ("primary", "single") if name == "node1" else ("secondary",)
        deadline = time.monotonic() + 60
        while self._state_or_none().get(name) not in {(w, w) for w in wanted}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become {wanted}: {self._state_or_none()}")
            # The standby's base backup waits for a checkpoint, which pg_auto_failover
            # lets PostgreSQL spread over minutes; one asked for now ends it at once.
            if name != "node1":
                self._checkpoint_primary()
            time.sleep(0.3)

    def state(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported, assigned) state, as the monitor has them."""
        with psycopg.connect(self.monitor_url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node"
            ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def primary(self) -> str | None:
        """The node the monitor has as primary now (reported and assigned)."""
        for name, (reported, goal) in self.state().items():
            if reported == goal and reported in ("primary", "single", "wait_primary"):
                return name
        return None

    def switchover(self) -> None:
        """A planned switch (maintenance): the monitor has the primary hand over to its
        synchronous standby, which has every commit, and waits until it has."""
        self._autoctl("perform", "switchover", "--pgdata", str(self.base / "monitor"))

    def wait_secondary(self, name: str, timeout: float = 60) -> None:
        """Until ``name`` is the primary's standby again, reported and assigned."""
        self._wait(
            lambda: self._state_or_none().get(name) == ("secondary", "secondary"),
            timeout,
            f"{name} to be secondary",
        )

    def kill_node(self, name: str) -> None:
        """The node is lost: its keeper and then its PostgreSQL are SIGKILLed (the
        keeper first, or it would start PostgreSQL again)."""
        keeper = self.keepers.pop(name, None)
        if keeper is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(keeper.pid, signal.SIGKILL)
            keeper.wait(10)
        self.nodes[name].kill()

    def remove(self) -> None:
        """Stop every keeper and server and delete the directory."""
        for name in list(self.keepers):
            keeper = self.keepers.pop(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(keeper.pid, signal.SIGTERM)
            try:
                keeper.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(keeper.pid, signal.SIGKILL)
                keeper.wait(5)
        for server in [LocalServer(self.base / "monitor", self.port), *self.nodes.values()]:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
            server.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def _autoctl(self, *args: str) -> None:
        command = as_owner(["env", *self._xdg(), "pg_autoctl", *args])
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {done.stderr[-2000:]}")

    def _xdg(self) -> list[str]:
        return [
            f"{k}={self.env[k]}" for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")
        ]

    def _start(self, name: str, *args: str) -> None:
        log = (self.base / f"{name}.keeper.log").open("ab")
        self.keepers[name] = subprocess.Popen(
            as_owner(["env", *self._xdg(), "pg_autoctl", *args]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill_node takes all of it
        )
        log.close()

    def _state_or_none(self) -> dict[str, tuple[str, str]]:
        try:
            return self.state()
        except psycopg.Error:
            return {}

    def _monitor_ready(self) -> bool:
        try:
            self.state()
        except psycopg.Error:
            return False
        return True

    def _tune_monitor(self) -> None:
        url = f"postgresql://postgres@127.0.0.1:{self.port}/pg_auto_failover"
        with psycopg.connect(url, autocommit=True) as conn:
            for name, value in FAST_MONITOR.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")

    def _checkpoint_primary(self) -> None:
        with contextlib.suppress(psycopg.Error):
            conn = psycopg.connect(self.nodes["node1"].url(), autocommit=True, connect_timeout=2)
            with conn:
                conn.execute("CHECKPOINT")

    @staticmethod
    def _wait(predicate: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)

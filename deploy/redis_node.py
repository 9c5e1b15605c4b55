"""One ``redis-server`` process of our own: its port, its directory, its config; started,
killed (-9) and started again on the same data. For deploy.redis_cluster's clusters and
Sentinel sets; never the machine's own server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
# Where up saves what it started (for down from another process).
STATE = "redis.json"
# Every data node: each write appended to its file (synced to disk every second), so a node
# killed and started again comes back with its data; no snapshots of its own; a replica's
# first copy sent at once, not 5 s later in case more replicas come.
DATA_CONFIG = ["appendonly yes", 'save ""', "repl-diskless-sync-delay 0"]


@dataclass
class RedisNode:
    """``redis-server`` on 127.0.0.1:``port`` with ``config`` lines, its files in
    ``root/<name>``; ``sentinel``: run as a sentinel (its config is its state: Sentinel
    rewrites it, so it is written only when missing)."""

    name: str
    port: int
    root: Path
    config: list[str]
    sentinel: bool = False
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A plain client of this very process (not of the cluster or the set)."""
        return redis.Redis("127.0.0.1", self.port, socket_timeout=timeout)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as client:
            info: dict[str, Any] = client.info(section)
        return info

    def start(self, timeout: float = 30) -> None:
        """Start (on the data it has) and wait until it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        if not (self.sentinel and conf.exists()):
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                "daemonize no",
                f"dir {self.dir}",
                f"logfile {self.dir / 'redis.log'}",
                *self.config,
            ]
            conf.write_text("\n".join(lines) + "\n")
        args = [REDIS_SERVER, str(conf), *(["--sentinel"] if self.sentinel else [])]
        proc = subprocess.Popen(
            args,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.proc, self.pid = proc, proc.pid
        deadline = time.monotonic() + timeout
        with self.client(timeout=1) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {proc.returncode}; see its log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} did not answer in {timeout:.0f} s")
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: what a lost machine looks like to the others."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """An orderly stop (SIGTERM), killed if it takes more than 10 s."""
        self._signal(signal.SIGTERM)

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:  # started by another process (the CLI's up): ask the kernel
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        # A zombie is gone (whoever adopted it may be slow to reap it, or never do).
        return stat.rpartition(")")[2].split()[0] != "Z"

    def _signal(self, signum: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)  # reaped: gone, and no warning about it later
        self.proc, self.pid = None, None


def wait_for(what: str, done: Callable[[], bool], timeout: float) -> None:
    """Poll ``done`` (a Redis error counts as not yet) until true; TimeoutError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if done():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def saved(nodes: list[RedisNode]) -> list[dict[str, Any]]:
    """What ``down`` from another process needs to stop them."""
    return [{"name": n.name, "port": n.port, "pid": n.pid} for n in nodes]

"""`make run-cluster`: `make run`'s stack on clusters of local processes, in the foreground;
Ctrl-C takes it all down, the clusters included.

    python -m deploy.run_cluster [--dir .run/cluster] [--port 18080] [--demo-events 2000]

Starts, on ports from ``--port`` up (the gateway's; see :class:`Layout`) and in directories
under ``--dir`` (emptied first), never on the standard ports nor in the machine's own
servers' directories:

- PostgreSQL: a pg_auto_failover formation (monitor, primary, synchronous standby); the
  services reach the primary through the formation's URL, catalog_api reads from both nodes;
- RabbitMQ: 3 clustered nodes, quorum queues;
- Redis: a Redis Cluster of 3 primaries, each with a replica;

then runs deploy/run.sh with deploy/Procfile.cluster (Typesense's 3 nodes are one of its
processes), which migrates the primary, loads the demo data, renders the gateway config and
starts every service under honcho with the clusters' URLs. run.sh is in a process group of
its own: a Ctrl-C (SIGINT, SIGTERM or SIGHUP) reaching this process is passed to that group
as SIGINT, as a terminal's Ctrl-C reaches ``make run``; once honcho has stopped the
services, each cluster is brought down.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from deploy.pg_autofailover import Formation
from deploy.rabbitmq_cluster import Cluster as RabbitCluster
from deploy.redis_cluster import Cluster as RedisCluster
from ticketing.config import Settings
from ticketing.typesense_cluster import local_cluster

log = logging.getLogger("run-cluster")

ROOT = Path(__file__).resolve().parents[1]
TYPESENSE_NODES = 3
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class Layout:
    """Every port of the run, from ``base`` (the gateway's) up, in one block: the services
    as deploy/Procfile.cluster runs them, then each cluster's nodes."""

    base: int

    # Offsets: gateway, its metrics, catalog_api, 2 waitingroom processes and 1 booking
    # front door, search_sync metrics, localstripe, 4 for the booking workers' metrics (the
    # Procfile's +0, +1, +3), then Typesense's 3 nodes (peering one below each API port).
    @property
    def typesense(self) -> int:
        return self.base + 13  # its nodes take base+12 .. base+17

    @property
    def postgres(self) -> int:
        return self.base + 18  # the monitor; the nodes the next two

    @property
    def rabbitmq(self) -> int:
        return self.base + 21  # AMQP on 3 ports, Erlang distribution on the next 3

    @property
    def redis(self) -> int:
        return self.base + 27  # 6 nodes, their cluster bus on the next 6

    @property
    def ports(self) -> range:
        return range(self.base, self.base + 39)

    def service_env(self, run_dir: Path) -> dict[str, str]:
        """The services' ports and state, and Typesense's cluster URL."""
        env = {
            "TICKETING_GATEWAY_PORT": self.base,
            "TICKETING_GATEWAY_METRICS_PORT": self.base + 1,
            "TICKETING_CATALOG_PORT": self.base + 2,
            "TICKETING_WAITINGROOM_PORT": self.base + 3,
            "TICKETING_WAITINGROOM_PROCESSES": 2,
            "TICKETING_FRONTDOOR_PROCESSES": 1,
            "TICKETING_SEARCH_SYNC_METRICS_PORT": self.base + 6,
            "TICKETING_LOCALSTRIPE_PORT": self.base + 7,
            "TICKETING_STRIPE_API_BASE": f"http://127.0.0.1:{self.base + 7}",
            "TICKETING_LOCALSTRIPE_STATE": run_dir / "localstripe" / "state.pickle",
            "TICKETING_BOOKING_WORKER_METRICS_PORT": self.base + 8,
            "TICKETING_TYPESENSE_PORT": self.typesense,
            "TICKETING_TYPESENSE_DATA_DIR": run_dir / "typesense",
        }
        typesense = local_cluster(
            Settings(typesense_port=self.typesense, typesense_data_dir=str(run_dir / "typesense")),
            TYPESENSE_NODES,
        )
        env["TICKETING_TYPESENSE_URL"] = typesense.url
        return {name: str(value) for name, value in env.items()}


class Engine(Protocol):
    """A cluster this run starts: ``up`` returns the services' variables for it, ``down``
    stops whatever ``up`` started, even if ``up`` failed half way."""

    name: str

    def up(self) -> dict[str, str]: ...

    def down(self) -> None: ...


class Postgres:
    name = "postgresql"

    def __init__(self, base: Path, port: int) -> None:
        self.formation = Formation(base, port)

    def up(self) -> dict[str, str]:
        self.formation.create()
        nodes = self.formation.nodes.values()
        return {
            "TICKETING_DATABASE_URL": self.formation.uri(),
            # Both nodes: catalog_api reads from the one in recovery, and from the other
            # only while no standby can serve (ticketing/settings_platform.py).
            "TICKETING_DATABASE_REPLICA_URLS": " ".join(node.url() for node in nodes),
        }

    def down(self) -> None:
        self.formation.remove()


class RabbitMQ:
    name = "rabbitmq"

    def __init__(self, base: Path, port: int) -> None:
        self.cluster = RabbitCluster.layout(base, port, 3)

    def up(self) -> dict[str, str]:
        self.cluster.up()
        return {"TICKETING_AMQP_URL": self.cluster.urls, "TICKETING_AMQP_QUEUE_TYPE": "quorum"}

    def down(self) -> None:
        self.cluster.down()


class Redis:
    name = "redis"

    def __init__(self, base: Path, port: int) -> None:
        self.cluster = RedisCluster.layout(base, port, primaries=3, replicas=1)

    def up(self) -> dict[str, str]:
        self.cluster.up()
        return {"TICKETING_REDIS_URL": self.cluster.url()}

    def down(self) -> None:
        self.cluster.down()


def busy_ports(ports: range) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as sock:
            # As the servers bind: the connections a previous run left in TIME_WAIT do
            # not hold a port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


@contextlib.contextmanager
def clusters(engines: list[Engine]) -> Iterator[dict[str, str]]:
    """Every engine up at once (RabbitMQ's nodes alone take some 20 s), their variables
    merged; every one down at the end, even those that failed to come up."""
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            started = time.monotonic()
            futures = [pool.submit(engine.up) for engine in engines]
            env: dict[str, str] = {}
            for engine, future in zip(engines, futures, strict=True):
                env |= future.result()
                log.info("%s up (%.1f s since the start)", engine.name, time.monotonic() - started)
        yield env
    finally:
        # A second Ctrl-C must not cut the teardown short and leave servers behind.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        with ThreadPoolExecutor(len(engines)) as pool:
            for engine, stopping in [(e, pool.submit(e.down)) for e in engines]:
                try:
                    stopping.result()
                except Exception:  # the others still go down; the operator reads why
                    log.exception("%s: down failed", engine.name)
                else:
                    log.info("%s down", engine.name)


def run_stack(env: dict[str, str]) -> int:
    """deploy/run.sh with ``env``, in a process group of its own that every stop signal
    reaching this process is passed to as SIGINT; its exit status."""
    proc = subprocess.Popen([str(ROOT / "deploy" / "run.sh")], env=env, cwd=ROOT, process_group=0)

    def stop(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.run_cluster", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".run/cluster"))
    parser.add_argument("--port", type=int, default=18080, help="the gateway's; others follow")
    parser.add_argument("--demo-events", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="run-cluster: %(message)s")
    # Until honcho runs, a stop signal ends this process through the clusters' teardown;
    # SIGINT too when it came in ignored (a background job of a script ignores it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))

    run_dir = args.dir.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    layout = Layout(args.port)
    with (run_dir.parent / f"{run_dir.name}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another run-cluster uses %s; stop it first", run_dir)
            return 1
        busy = busy_ports(layout.ports)
        if busy:
            log.error("ports %s are taken; pick another --port", ", ".join(map(str, busy)))
            return 1
        shutil.rmtree(run_dir, ignore_errors=True)  # a run's clusters start from nothing
        run_dir.mkdir()
        engines: list[Engine] = [
            Postgres(run_dir / "postgres", layout.postgres),
            RabbitMQ(run_dir / "rabbitmq", layout.rabbitmq),
            Redis(run_dir / "redis", layout.redis),
        ]
        with clusters(engines) as cluster_env:
            env = {
                **os.environ,
                "TICKETING_ENV": os.environ.get("TICKETING_ENV", "dev"),
                **layout.service_env(run_dir),
                **cluster_env,
                "DEMO_EVENTS": str(args.demo_events),
                "RUN_PROCFILE": "deploy/Procfile.cluster",
                "RUN_DIR": str(run_dir),
                "RUN_SETUP": "no",
            }
            return run_stack(env)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # stopped while the clusters came up; they are down again
        sys.exit(130)

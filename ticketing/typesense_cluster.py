"""A Typesense cluster of local processes: each node with its own API and peering ports and
data directory, all listed in one nodes file (``--nodes``), as Typesense's Raft clustering
wants. The tests start one; so does

    python -m ticketing.typesense_cluster [--nodes 3]

(for ``make run-cluster``): node i serves its API on TICKETING_TYPESENSE_PORT + 2i and peers
one port below, its data in TICKETING_TYPESENSE_DATA_DIR/node-i; it prints the
TICKETING_TYPESENSE_URL that names them all and stops them on SIGTERM or Ctrl-C.

Ready means every node running reports healthy and one of them is the leader: a cluster
elects its first leader about ten seconds after its nodes start, and a new one some five
seconds after losing it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticketing.config import Settings
from ticketing.typesense_server import binary_path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Raft states as Typesense's GET /debug reports them.
LEADER = 1
FOLLOWER = 4
_PROBE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ClusterNode:
    api_port: int
    peering_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def peer(self) -> str:
        """The node as the nodes file names it: ``address:peering_port:api_port``."""
        return f"{HOST}:{self.peering_port}:{self.api_port}"


class LocalCluster:
    """Start, kill, restart and stop the nodes; ask each one its health and Raft state."""

    def __init__(
        self,
        nodes: Sequence[ClusterNode],
        api_key: str,
        nodes_file: Path,
        *,
        binary: str | None = None,
        quiet: bool = True,
    ) -> None:
        self.nodes = list(nodes)
        self.api_key = api_key
        self.nodes_file = nodes_file
        self.binary = binary or binary_path()
        self.quiet = quiet
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * len(self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """What TICKETING_TYPESENSE_URL says for this cluster."""
        return ",".join(self.urls)

    def command(self, index: int) -> list[str]:
        node = self.nodes[index]
        return [
            self.binary,
            f"--data-dir={node.data_dir}",
            f"--api-key={self.api_key}",
            f"--api-address={HOST}",
            f"--api-port={node.api_port}",
            f"--peering-address={HOST}",
            f"--peering-port={node.peering_port}",
            f"--nodes={self.nodes_file}",
        ]

    def start(self) -> None:
        self.nodes_file.parent.mkdir(parents=True, exist_ok=True)
        self.nodes_file.write_text(",".join(node.peer for node in self.nodes))
        for index in range(len(self.nodes)):
            self.start_node(index)

    def start_node(self, index: int) -> None:
        """Start (or restart, on the data it had) one node."""
        self.nodes[index].data_dir.mkdir(parents=True, exist_ok=True)
        # Raft logs its status every few seconds at INFO: warnings and errors only, unless
        # GLOG_minloglevel (glog reads exactly this lower-case name) says otherwise.
        level = os.environ.get("GLOG_minloglevel", "1")  # noqa: SIM112
        env = {**os.environ, "GLOG_minloglevel": level}
        out = subprocess.DEVNULL if self.quiet else None
        self.processes[index] = subprocess.Popen(
            self.command(index), stdout=out, stderr=out, env=env
        )

    def kill(self, index: int) -> None:
        """SIGKILL one node: no goodbye to its peers, as when its machine dies."""
        process = self.processes[index]
        if process is not None:
            process.kill()
            process.wait()
            self.processes[index] = None

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                process.terminate()
        for index, process in enumerate(self.processes):
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.processes[index] = None

    def running(self) -> list[int]:
        return [i for i, p in enumerate(self.processes) if p is not None and p.poll() is None]

    def _get(self, index: int, path: str) -> dict[str, Any] | None:
        request = urllib.request.Request(  # noqa: S310 - http on loopback, our own node
            self.nodes[index].url + path, headers={"X-TYPESENSE-API-KEY": self.api_key}
        )
        try:
            with urllib.request.urlopen(request, timeout=_PROBE_SECONDS) as resp:  # noqa: S310
                answer: dict[str, Any] = json.loads(resp.read())
        except (OSError, ValueError):  # refused, timed out, 503, not JSON
            return None
        return answer

    def healthy(self, index: int) -> bool:
        return (self._get(index, "/health") or {}).get("ok") is True

    def raft_state(self, index: int) -> int | None:
        state = (self._get(index, "/debug") or {}).get("state")
        return state if isinstance(state, int) else None

    def leader(self) -> int | None:
        """The node that is the leader now, if any answers so."""
        return next((i for i in self.running() if self.raft_state(i) == LEADER), None)

    def followers(self) -> list[int]:
        return [i for i in self.running() if self.raft_state(i) == FOLLOWER]

    def ready(self) -> bool:
        running = self.running()
        return (
            bool(running)
            and all(self.healthy(i) for i in running)
            and [self.raft_state(i) for i in running].count(LEADER) == 1
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until ready; returns the seconds it took."""
        started = time.monotonic()
        while not self.ready():
            if time.monotonic() - started > timeout:
                states = {i: (self.healthy(i), self.raft_state(i)) for i in self.running()}
                raise TimeoutError(f"typesense cluster not ready after {timeout}s: {states}")
            time.sleep(0.1)
        return time.monotonic() - started


def local_cluster(settings: Settings, size: int, *, quiet: bool = False) -> LocalCluster:
    """The cluster ``make run-cluster`` runs, on ports from TICKETING_TYPESENSE_PORT."""
    base = Path(settings.typesense_data_dir).resolve()
    nodes = [
        ClusterNode(
            api_port=settings.typesense_port + 2 * i,
            peering_port=settings.typesense_port + 2 * i - 1,
            data_dir=base / f"node-{i}",
        )
        for i in range(size)
    ]
    return LocalCluster(nodes, settings.typesense_api_key, base / "nodes", quiet=quiet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ticketing.typesense_cluster")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (odd, at least 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.nodes < 3 or args.nodes % 2 == 0:
        parser.error("Raft needs an odd number of nodes, at least 3, to survive losing one")
    cluster = local_cluster(Settings.from_env(), args.nodes)
    stopping: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stopping.append(signum))
    cluster.start()
    log.info("typesense cluster starting: TICKETING_TYPESENSE_URL=%s", cluster.url)
    try:
        while not stopping and not cluster.ready():
            time.sleep(0.2)
        if not stopping:
            log.info("typesense cluster ready, leader node-%s", cluster.leader())
        while not stopping:
            time.sleep(0.2)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

"""`make run-cluster` as a person runs it: the whole stack on clusters of local processes
comes up with demo data, answers through the gateway with every engine in its cluster mode,
and a Ctrl-C leaves no process or port of its own behind.

The run gets ports and a directory of its own (CLUSTER_PORT, CLUSTER_DIR): the machine's
servers and a person's own `make run-cluster` are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.rabbitmq_cluster import free_ports
from deploy.run_cluster import Layout
from tests.e2e.stack import ROOT, Stack, dev_token
from tests.servers import RUN_ID
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEMO_EVENTS = 30
BANNER = "ticketing is up: "


@dataclass(frozen=True, slots=True)
class Proc:
    parent: int
    started: str  # clock ticks after boot: a pid reused later has another
    text: bytes  # command line and environment, NUL-separated

    @property
    def command(self) -> str:
        return self.text.split(b"\0", 1)[0].decode(errors="replace")


def processes() -> dict[int, Proc]:
    """Every process now, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            text = (entry / "cmdline").read_bytes() + b"\0" + (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        found[int(entry.name)] = Proc(int(fields[1]), fields[19], text)
    return found


def started_by(make_pid: int, run_dir: Path) -> dict[int, Proc]:
    """The run's processes: make's descendants, those whose command line or environment
    names the run's directory (servers that daemonised away from make: their data is
    there), and all of theirs."""
    table = processes()
    marker = str(run_dir).encode()
    ours = {pid for pid, proc in table.items() if marker in proc.text} | {make_pid}
    grew = True
    while grew:
        children = {pid for pid, proc in table.items() if proc.parent in ours}
        grew = not children <= ours
        ours |= children
    return {pid: table[pid] for pid in ours if pid in table}


def still_running(recorded: dict[int, Proc]) -> list[str]:
    """Those of ``recorded`` alive still (the same pid, started at the same time)."""
    table = processes()
    return [
        f"{pid}: {proc.command}"
        for pid, proc in recorded.items()
        if pid in table and table[pid].started == proc.started
    ]


def listening(ports: range) -> list[int]:
    """Of ``ports``, those something listens on (the kernel's table, no connection made)."""
    taken = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                taken.add(int(local.rpartition(":")[2], 16))
    return sorted(taken.intersection(ports))


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, PostgreSQL runs as postgres, which must reach its
    # directory (pytest's base directory is root's alone).
    path = Path(tempfile.mkdtemp(prefix=f"tk-run-cluster-{RUN_ID}-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_run_cluster_serves_on_clusters_and_ctrl_c_stops_everything(run_dir: Path) -> None:
    began = time.monotonic()
    layout = Layout(free_ports(len(Layout(0).ports)))
    log = run_dir / "make.log"
    command = [
        "make",
        "--no-print-directory",
        "run-cluster",
        f"CLUSTER_PORT={layout.base}",
        f"CLUSTER_DIR={run_dir / 'run'}",
        f"CLUSTER_DEMO_EVENTS={DEMO_EVENTS}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    with log.open("wb") as out:
        # A session of its own: SIGINT to its group is a terminal's Ctrl-C.
        make = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack = Stack({"TICKETING_GATEWAY_PORT": str(layout.base)}, run_dir)
    stack.process = make
    recorded: dict[int, Proc] = {}
    try:
        wait_until(lambda: BANNER in announced(log, make), 240, "the announced URL")
        up = time.monotonic() - began
        recorded = started_by(make.pid, run_dir / "run")
        # The record holds every cluster's servers, or its check below would prove nothing.
        names = {proc.command.split(" ")[0].rpartition("/")[2] for proc in recorded.values()}
        assert {"beam.smp", "postgres", "redis-server", "typesense-server"} <= names, names
        check_the_stack(stack, layout)
    finally:
        stopping = time.monotonic()
        os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    stopped = time.monotonic() - stopping
    assert still_running(recorded) == [], log.read_text(errors="replace")[-3000:]
    assert listening(layout.ports) == []
    print(f"run-cluster: up in {up:.1f} s, stopped in {stopped:.1f} s, {len(recorded)} processes")


def announced(log: Path, make: subprocess.Popen[bytes]) -> str:
    text = log.read_text(errors="replace")
    assert make.poll() is None, f"make run-cluster exited {make.returncode}:\n{text[-4000:]}"
    return text


def check_the_stack(stack: Stack, layout: Layout) -> None:
    # catalog_api's health, through the gateway, and a waitingroom process's own (the
    # gateway's /healthz is catalog_api's): each engine says how it runs.
    status, _, health = stack.request("GET", "/healthz")
    assert status == 200, health
    catalog = health["components"]
    status, _, health = stack.request("GET", "/healthz", base=f"http://127.0.0.1:{layout.base + 3}")
    assert status == 200, health
    waitingroom = health["components"]
    assert catalog["typesense"] == engine("cluster", 3)
    assert catalog["postgres"] == engine("replicas", 2)
    assert catalog["redis"] == waitingroom["redis"] == engine("cluster", 6)
    assert waitingroom["rabbitmq"] == engine("cluster", 3)

    # Typesense's own answer, not the PostgreSQL fallback's: once, within a few seconds of
    # the banner (a CI run once heard the fallback right after it, on a busy machine).
    answers: list[tuple[int, dict[str, str], dict]] = []

    def searched() -> bool:
        answers.append(stack.request("GET", "/search?per_page=5"))
        if answers[-1][0] == 200 and "X-Search-Degraded" not in answers[-1][1]:
            return True
        time.sleep(0.25)  # well within the per-address rate limit
        return False

    wait_until(searched, 10, "a search answered by Typesense")
    status, headers, found = answers[-1]
    assert found["found"] == DEMO_EVENTS
    print(f"run-cluster: search from Typesense at the {len(answers)}th try")

    status, _, events = stack.request("GET", "/events?limit=20")
    queued = next(e for e in events["items"] if e["queue_enabled"])
    token = dev_token(stack, f"cluster-fan-{RUN_ID}", [])
    status, headers, joined = stack.request("POST", f"/queue/{queued['id']}/join", token=token)
    assert status == 200, joined
    # The gateway's Lua answered, on the Redis Cluster (the waitingroom answers otherwise).
    assert headers.get("X-Queue-Join") == "gateway"
    assert joined["position"] == 1, joined
    status, _, place = stack.request("GET", f"/queue/{queued['id']}/status", token=token)
    assert status == 200, place
    # Still first in line, or already let in: the demo event admits while nobody waits
    # ahead (a CI run read the status after the admitter's tick had admitted the fan).
    assert place["status"] == "admitted" or place["position"] == 1, place


def engine(mode: str, nodes: int) -> dict[str, object]:
    return {"status": "ok", "mode": mode, "nodes": nodes, "healthy": nodes}

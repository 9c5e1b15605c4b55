"""``python -m waitingroom --supervise``: several real waitingroom processes on consecutive
ports, which stop together, whichever way the stop comes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.booking.support import settings_env
from tests.support import consecutive_free_ports, wait_until
from ticketing.config import Settings
from waitingroom.processes import waitingroom_pids

PROCESSES = 2
FRONTDOORS = 1  # a booking front door (--role booking) on the port after them


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.fixture
def supervised(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    first = consecutive_free_ports(PROCESSES + FRONTDOORS)
    env = {
        **os.environ,
        **settings_env(settings),
        "TICKETING_WAITINGROOM_PORT": str(first),
        "TICKETING_WAITINGROOM_PROCESSES": str(PROCESSES),
        "TICKETING_FRONTDOOR_PROCESSES": str(FRONTDOORS),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "waitingroom", "--supervise"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ports = [first + i for i in range(PROCESSES + FRONTDOORS)]
    try:
        for port in ports:
            wait_until(lambda p=port: healthy(p), 60, f"the waitingroom process on {port}")
        yield proc, ports
    finally:
        everyone = waitingroom_pids(proc.pid) + waitingroom_pids(proc.pid, "booking")
        for child in everyone + children_of(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_every_process_serves_its_own_port_and_a_stop_reaches_them_all(supervised):
    proc, ports = supervised
    children = waitingroom_pids(proc.pid)
    assert len(children) == PROCESSES
    front_doors = waitingroom_pids(proc.pid, "booking")
    assert len(front_doors) == FRONTDOORS and not set(front_doors) & set(children)
    # the front door answers the booking routes, not the queue's
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/queue/1/status", timeout=5)
    missing.value.close()  # an HTTPError holds its response's socket
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/me/bookings", timeout=5)
    anonymous.value.close()
    assert anonymous.value.code == 401
    children += front_doors
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    for child in children:
        wait_until(lambda c=child: gone(c), 10, f"process {child} to stop")
    assert not any(healthy(port) for port in ports)


@pytest.mark.slow
def test_when_one_process_dies_the_others_stop_and_the_supervisor_fails(supervised):
    proc, ports = supervised
    first, *others = waitingroom_pids(proc.pid) + waitingroom_pids(proc.pid, "booking")
    os.kill(first, signal.SIGKILL)
    assert proc.wait(30) != 0  # so honcho (or a container runtime) sees the failure
    for child in others:
        wait_until(lambda c=child: gone(c), 30, f"process {child} to stop")
    assert not any(healthy(port) for port in ports)

"""Several waitingroom processes behind one command: ``python -m waitingroom --supervise``
starts ``TICKETING_WAITINGROOM_PROCESSES`` of them (plain ``python -m waitingroom`` each),
on ports from ``TICKETING_WAITINGROOM_PORT`` upward, and supervises them.

Why processes: a waiting fan holds a websocket, and this machine caps every process at
20,000 open files, so one process holds about 15,000 fans (and uses one core); the gateway
spreads fans over all of them. Every process is a whole waitingroom (state lives in Redis),
so any of them can serve any fan.

Supervision is honcho's (the library ``make run`` already runs the whole stack with): it
starts every process in its own session, forwards a stop once, and when one exits it stops
the others and exits with that status, so the outer supervisor (honcho again, or a
container runtime) sees the failure instead of a half-running front door.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

from honcho.manager import Manager

from ticketing.config import Settings


def child_env(base: dict[str, str], port: int) -> dict[str, str]:
    return {**base, "TICKETING_WAITINGROOM_PORT": str(port)}


def supervise(settings: Settings) -> int:
    manager = Manager()
    command = f"exec {shlex.quote(sys.executable)} -m waitingroom"
    for index, port in enumerate(settings.waitingroom_ports, start=1):
        manager.add_process(f"waitingroom.{index}", command, env=child_env(dict(os.environ), port))
    # Booking front doors: reserve and confirm answered by processes that hold no sockets,
    # so they never wait behind a push to thousands of fans (the OS schedules a mostly
    # idle process the moment a request wakes it).
    for index, port in enumerate(settings.frontdoor_ports, start=1):
        manager.add_process(
            f"frontdoor.{index}", f"{command} --role booking", env=child_env(dict(os.environ), port)
        )
    manager.loop()
    # honcho answers a stop signal with 128 + its number; a requested stop is a clean exit.
    # A process that died answers with its own status, which is never one of these.
    if manager.returncode in _STOPPED_BY_REQUEST:
        return 0
    return manager.returncode or 0


_STOPPED_BY_REQUEST = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})


def waitingroom_pids(supervisor_pid: int, role: str = "all") -> list[int]:
    """The ``python -m waitingroom`` processes below a supervisor (Linux ``/proc``), for
    the tests and benchmarks that watch them: honcho keeps a helper process between itself
    and each of them. ``role`` ``booking``: its booking front doors instead."""
    tail = [b"-m", b"waitingroom", b""] if role == "all" else [b"--role", role.encode(), b""]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(supervisor_pid, []))
    while todo:
        pid = todo.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[-3:] == tail and b"waitingroom" in argv:
            found.append(pid)
        else:
            todo += children.get(pid, [])
    return sorted(found)

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

from honcho.manager import Manager

from ticketing.config import Settings


def child_env(base: dict[str, str], port: int) -> dict[str, str]:
    return {**base, "TICKETING_WAITINGROOM_PORT": str(port)}


def supervise(settings: Settings) -> int:
    manager = Manager()
    command = f"exec {shlex.quote(sys.executable)} -m waitingroom"
    for index, port in enumerate(settings.waitingroom_ports, start=1):
        manager.add_process(f"waitingroom.{index}", command, env=child_env(dict(os.environ), port))
    manager.loop()
    # honcho answers a stop signal with 128 + its number; a requested stop is a clean exit.
    # A process that died answers with its own status, which is never one of these.
    if manager.returncode in _STOPPED_BY_REQUEST:
        return 0
    return manager.returncode or 0


_STOPPED_BY_REQUEST = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})

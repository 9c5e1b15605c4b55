"""Several waitingroom processes behind one command: ``python -m waitingroom --supervise``
starts ``TICKETING_WAITINGROOM_PROCESSES`` of them (plain ``python -m waitingroom`` each),
on ports from ``TICKETING_WAITINGROOM_PORT`` upward, and supervises them.

Why processes: a waiting fan holds a websocket, and this machine caps every process at
20,000 open files, so one process holds about 15,000 fans (and uses one core); the gateway
spreads fans over all of them. Every process is a whole waitingroom (state lives in Redis),
so any of them can serve any fan.

The supervisor only forwards and watches: each child runs in its own process group so a
stop signal reaches it exactly once (a second SIGTERM would cut aiohttp's graceful shutdown
short), and the kernel sends it SIGTERM if the supervisor dies without saying so. When one
child exits the others are stopped and the supervisor exits with its status, so honcho or
a container runtime sees the failure instead of a half-running front door.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

from ticketing.config import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 20.0  # a child's graceful shutdown (websockets closed, tasks finished)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the supervisor dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the process group and the forwarded signals still apply


def child_env(base: dict[str, str], port: int) -> dict[str, str]:
    return {**base, "TICKETING_WAITINGROOM_PORT": str(port)}


def supervise(settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            log.info("waitingroom supervisor: signal %s, stopping %d", signum, len(children))
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for port in settings.waitingroom_ports:
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "waitingroom"],
                env=child_env(dict(os.environ), port),
                process_group=0,
                preexec_fn=_die_with_parent,  # safe: the supervisor runs no threads
            )
        )
        log.info("waitingroom supervisor: process %d on port %d", children[-1].pid, port)

    status = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            status = exited[0].returncode or 1
            log.error(
                "waitingroom supervisor: process %d exited with %s; stopping the others",
                exited[0].pid, exited[0].returncode,
            )
            stop(signal.SIGTERM, None)
            break
        time.sleep(0.2)

    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("waitingroom supervisor: process %d did not stop; killing it", child.pid)
            child.kill()
            child.wait()
    return status

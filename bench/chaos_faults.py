"""The chaos run's faults and their schedule.

Each fault breaks one component while the on-sale runs and brings it back as its
supervisor would (a container's restart policy: at once), and returns once the component
answers again: a booking worker when its consumers are back on the partition queue, a
waitingroom when every process answers /healthz, and so on. The schedule runs them one at
a time, each followed by a window in which nothing else is broken, and records when each
started, when its component was back and when its window ended.

The processes are the stack's (``ChaosProcs``, bench/reserve.py's ProcessGroups that can
restart one by name, and restart, as a supervisor would, one that exits unasked, saying
so); the servers are the run's private ones (bench/chaos_servers.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from bench.chaos_servers import PrivateServers, wait_until
from bench.reserve import ProcessGroups, wait_for_consumers
from bench.search import http_get, say
from bench.surge_setup import consecutive_ports
from search_sync.topology import QUEUE as SEARCH_SYNC_QUEUE
from ticketing.config import Settings
from ticketing.messages import BOOKING_PAYMENTS_QUEUE, BOOKING_QUEUE_PREFIX, booking_routing_key
from waitingroom.processes import waitingroom_pids

MAX_UNASKED = 5  # restarts of a process that keeps exiting by itself


class ChaosProcs(ProcessGroups):
    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, tuple[list[str], dict[str, str], Path, bool]] = {}
        self.faulted: set[str] = set()
        self.lock = threading.RLock()
        self.restarts: Counter[str] = Counter()
        self.last_restart: dict[str, float] = {}
        self.unasked: list[str] = []  # exits nobody asked for, each restarted
        self.given_up: set[str] = set()  # exited unasked MAX_UNASKED times: left down

    def start(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, *, pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with self.lock:
            self.specs[name] = (argv, env, log, pipe)
            return super().start(name, argv, env, log, pipe=pipe)

    def proc(self, name: str) -> subprocess.Popen[bytes]:
        with self.lock:
            return next(p for n, p in self.started if n == name)

    def check_alive(self) -> None:
        """A process that exited while nothing was done to it is restarted (at most once a
        second), and noted."""
        with self.lock:
            dead = [
                (n, p)
                for n, p in self.started
                if p.poll() is not None
                and n not in self.faulted
                and not n.startswith(("load", "py-spy"))
                and time.monotonic() - self.last_restart.get(n, 0) > 1
            ]
        for name, proc in dead:
            if name in self.given_up:
                continue
            again = sum(line.split()[1] == name for line in self.unasked) < MAX_UNASKED
            line = f"{time.strftime('%H:%M:%S')} {name} exited with {proc.returncode}; " + (
                "restarted" if again else "left down"
            )
            say(f"chaos: {line}")
            self.unasked.append(line)
            if again:
                self.restart(name)
            else:
                self.given_up.add(name)

    def restart(self, name: str, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Stop what is left of ``name`` (its process group) and start it again as it was
        started (or with ``argv``); its log so far is kept beside, numbered."""
        with self.lock:
            old = self.proc(name)
            if old.poll() is None:
                os.killpg(old.pid, signal.SIGKILL)
                old.wait()
            self.started = [(n, p) for n, p in self.started if p is not old]
            first, env, log, pipe = self.specs[name]
            if name.startswith("booking_"):
                # bench/reserve.py gave it an ephemeral metrics port, which a fan's client
                # socket may hold by now: one below that range instead.
                env = {**env, "TICKETING_BOOKING_WORKER_METRICS_PORT": str(consecutive_ports(1))}
                self.specs[name] = (first, env, log, pipe)
            self.restarts[name] += 1
            self.last_restart[name] = time.monotonic()
            if log.exists():
                log.rename(log.with_name(f"{log.stem}.{self.restarts[name]}{log.suffix}"))
            return self.start(name, argv or first, env, log, pipe=pipe)


@dataclass
class FaultRecord:
    key: str
    label: str
    started: float
    back: float | None = None
    window_end: float | None = None
    detail: str = ""
    error: str = ""


class Faults:
    """Every fault, by key; each returns a line saying what it did."""

    LABELS: ClassVar[dict[str, str]] = {
        "booking_worker": "kill -9 booking worker",
        "payments_worker": "kill -9 payments worker",
        "waitingroom": "kill -9 waitingroom process",
        "search_sync": "kill -9 search_sync",
        "typesense": "Typesense stop/start",
        "localstripe": "localstripe down",
        "redis_kept": "Redis restart, data kept (AOF)",
        "redis_lost": "Redis restart, data lost",
        "postgres": "PostgreSQL restart",
        "rabbitmq": "RabbitMQ restart",
    }

    def __init__(
        self,
        procs: ChaosProcs,
        servers: PrivateServers,
        settings: Settings,
        event_id: int,
        workers: int,
        down: dict[str, float],
    ) -> None:
        self.procs, self.servers, self.settings = procs, servers, settings
        self.event_id, self.workers, self.down = event_id, workers, down

    def run(self, key: str) -> str:
        fault: Callable[[], str] = getattr(self, key)
        return fault()

    # -- processes -----------------------------------------------------------------------

    def _kill_and_restart(self, name: str, ready: Callable[[], object], what: str) -> str:
        with self.procs.lock:
            self.procs.faulted.add(name)
            proc = self.procs.proc(name)
        try:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            self.procs.restart(name)
            seconds = wait_until(what, ready, 120)
        finally:
            self.procs.faulted.discard(name)
        return f"kill -9 {name} (pid {proc.pid}); restarted, {what} in {seconds:.1f} s"

    def _consumers(self, queue: str, count: int) -> Callable[[], bool]:
        def ready() -> bool:
            asyncio.run(wait_for_consumers(self.settings.amqp_url, queue, count, 120))
            return True

        return ready

    def booking_worker(self) -> str:
        partition = booking_routing_key(self.event_id, self.settings.booking_partitions)
        name = f"booking_worker-{int(partition) % self.workers}"  # first in line for it
        queue = BOOKING_QUEUE_PREFIX + partition
        return self._kill_and_restart(
            name, self._consumers(queue, self.workers), f"{self.workers} consumers on {queue}"
        )

    def payments_worker(self) -> str:
        ready = self._consumers(BOOKING_PAYMENTS_QUEUE, 1)
        return self._kill_and_restart("booking_payments", ready, "consuming payments")

    def search_sync(self) -> str:
        ready = self._consumers(SEARCH_SYNC_QUEUE, 1)
        return self._kill_and_restart("search_sync", ready, "consuming changes")

    def waitingroom(self) -> str:
        """kill -9 one waitingroom process. Its supervisor (``--supervise``, as make run and
        compose run it) stops the others and exits, by design (waitingroom/processes.py);
        the run restarts the supervisor, as compose's restart policy would."""
        with self.procs.lock:
            self.procs.faulted.add("waitingroom")
            supervisor = self.procs.proc("waitingroom")
        try:
            victim = waitingroom_pids(supervisor.pid)[0]
            os.kill(victim, signal.SIGKILL)
            try:
                supervisor.wait(timeout=30)
                how = f"its supervisor exited ({supervisor.returncode})"
            except subprocess.TimeoutExpired:
                how = "its supervisor did not exit in 30 s: stopped"
            self.procs.restart("waitingroom")
            ports = self.settings.waitingroom_ports + self.settings.frontdoor_ports
            seconds = wait_until("waitingroom processes", lambda: self._healthy(ports), 120)
        finally:
            self.procs.faulted.discard("waitingroom")
        return f"kill -9 waitingroom pid {victim}; {how}; all {len(ports)} back in {seconds:.1f} s"

    @staticmethod
    def _healthy(ports: list[int]) -> bool:
        return all(http_get(f"http://127.0.0.1:{p}/healthz")[0] == 200 for p in ports)

    def _stop_then_start(
        self, name: str, seconds_down: float, ready: Callable[[], object], argv: list[str]
    ) -> str:
        with self.procs.lock:
            self.procs.faulted.add(name)
            proc = self.procs.proc(name)
        began = time.monotonic()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            stopped = time.monotonic() - began
            time.sleep(max(0.0, seconds_down - stopped))
            self.procs.restart(name, argv)
            seconds = wait_until(f"{name} back", ready, 120)
        finally:
            self.procs.faulted.discard(name)
        return f"SIGTERM (stopped in {stopped:.1f} s), started again, answering in {seconds:.1f} s"

    def typesense(self) -> str:
        url = self.settings.typesense_url + "/health"
        argv = self.procs.specs["typesense"][0]
        return self._stop_then_start(
            "typesense", self.down["typesense"], lambda: http_get(url)[0] == 200, argv
        )

    def localstripe(self) -> str:
        """Down for its seconds: SIGTERM (its last snapshot written), then started on that
        state (without --from-scratch)."""
        url = self.settings.stripe_api_base + "/v1/payment_intents"
        argv = [a for a in self.procs.specs["localstripe"][0] if a != "--from-scratch"]
        return self._stop_then_start(
            "localstripe", self.down["localstripe"], lambda: http_get(url)[0] == 401, argv
        )

    # -- servers -------------------------------------------------------------------------

    def redis_kept(self) -> str:
        seconds = self.servers.redis.restart(keep_data=True)
        return f"kill -9, started on its AOF, answering in {seconds:.1f} s"

    def redis_lost(self) -> str:
        seconds = self.servers.redis.restart(keep_data=False)
        return f"kill -9, AOF deleted, started empty, answering in {seconds:.1f} s"

    def postgres(self) -> str:
        seconds = self.servers.postgres.restart()
        return f"fast shutdown and start: {seconds:.1f} s"

    def rabbitmq(self) -> str:
        seconds = self.servers.rabbitmq.restart()
        return f"SIGTERM (orderly stop) and start: {seconds:.1f} s"


class FaultSet(Protocol):
    """What a schedule runs: ``Faults``, or bench/chaos_cluster_faults.py's node losses."""

    LABELS: ClassVar[dict[str, str]]

    def run(self, key: str) -> str: ...


class Schedule:
    """The faults one after another from ``delay`` seconds after on-sale, each followed by
    ``window`` quiet seconds; stops at a component that does not come back."""

    def __init__(self, faults: FaultSet, keys: list[str], delay: float, window: float) -> None:
        self.faults, self.keys, self.delay, self.window = faults, keys, delay, window
        self.records: list[FaultRecord] = []
        self.finished = threading.Event()

    def begin(self, on_sale_at: float) -> None:
        threading.Thread(target=self._run, args=(on_sale_at,), daemon=True).start()

    def running(self) -> bool:
        return not self.finished.is_set()

    def _run(self, on_sale_at: float) -> None:
        try:
            time.sleep(max(0.0, on_sale_at + self.delay - time.time()))
            for key in self.keys:
                record = FaultRecord(key, self.faults.LABELS[key], time.time())
                self.records.append(record)
                say(f"chaos: {record.label}")
                try:
                    record.detail = self.faults.run(key)
                except (Exception, SystemExit) as exc:  # reported as the fault's
                    record.error = f"{type(exc).__name__}: {exc}"
                    say(f"chaos: {record.label} failed: {record.error}")
                    return
                record.back = time.time()
                say(f"chaos: {record.label}: {record.detail}")
                time.sleep(self.window)
                record.window_end = time.time()
        finally:
            self.finished.set()

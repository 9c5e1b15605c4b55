"""Is each backing server answering? Used by deploy/setup.sh and deploy/run.sh.

    python3 -m deploy.probe status              # "name state local|remote host port" lines
    python3 -m deploy.probe wait [--timeout S] postgres redis rabbitmq
    python3 -m deploy.probe ports-free          # fails naming dev-stack ports already taken

A server counts as up when it speaks its protocol, not merely when its port is open:
PostgreSQL answers a startup message without "starting up", Redis answers PING without
LOADING, RabbitMQ answers the AMQP header with a method frame. Addresses come from the
TICKETING_* URLs, so pointing them elsewhere makes setup wait for, not start, a server.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ticketing.config import Settings
from ticketing.redis_url import parse_redis_url

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# States: up, down (refused/unreachable), starting, silent (open but no answer),
# auth (PostgreSQL wants a password the URL does not carry).
UP = "up"
AUTH_EXIT = 3  # `wait` exit status when PostgreSQL wants a password


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int
    user: str = ""
    has_password: bool = False

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS


def _pgpass_fields(line: str) -> list[str]:
    """A ~/.pgpass line's fields: colon-separated, a backslash escapes ':' and itself."""
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current]


def has_pgpass_entry(host: str, port: int, user: str | None) -> bool:
    """Whether the password file libpq and asyncpg read (PGPASSFILE, else ~/.pgpass) has a
    password for ``user`` at ``host``:``port`` (deploy/setup.sh writes one there)."""
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return False
    wanted = (host, str(port), "*", user or "postgres")
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = _pgpass_fields(line)
        # The database is not known here: only a line for every database ('*') counts.
        if (
            len(fields) == 5
            and fields[4]
            and all(given in ("*", want) for given, want in zip(fields[:4], wanted, strict=True))
        ):
            return True
    return False


def targets(settings: Settings) -> dict[str, Target]:
    # A RabbitMQ cluster's URLs: the first node's (make run's own setup is one node); a
    # Redis Cluster's first seed, Sentinel's first sentinel (either answers PING).
    pg, mq = (urlsplit(u) for u in (settings.database_url, settings.amqp_url.split()[0]))
    redis_host, redis_port = parse_redis_url(settings.redis_url).nodes[0]
    return {
        "postgres": Target(
            "postgres",
            pg.hostname or "127.0.0.1",
            pg.port or 5432,
            pg.username or "postgres",
            bool(pg.password)
            or has_pgpass_entry(pg.hostname or "127.0.0.1", pg.port or 5432, pg.username),
        ),
        "redis": Target("redis", redis_host, redis_port),
        "rabbitmq": Target("rabbitmq", mq.hostname or "127.0.0.1", mq.port or 5672),
    }


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed early")
        data += chunk
    return data


def _postgres(sock: socket.socket, t: Target) -> str:
    params = b"user\0" + t.user.encode() + b"\0database\0postgres\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    kind = _recv_exact(sock, 1)
    (length,) = struct.unpack("!i", _recv_exact(sock, 4))
    body = _recv_exact(sock, min(length - 4, 4096))
    if kind == b"R":
        sock.sendall(b"X\0\0\0\x04")  # Terminate: leave without a half-open session
        (method,) = struct.unpack("!i", body[:4])
        return UP if method == 0 or t.has_password else "auth"
    if kind == b"E":
        fields = {f[:1]: f[1:] for f in body.split(b"\0") if f}
        return "starting" if fields.get(b"C") == b"57P03" else UP
    return "silent"


def _redis(sock: socket.socket, t: Target) -> str:
    sock.sendall(b"PING\r\n")
    line = sock.recv(64)
    if line.startswith(b"-LOADING"):
        return "starting"
    return UP if line[:1] in (b"+", b"-") else "silent"  # -NOAUTH still proves it answers


def _rabbitmq(sock: socket.socket, t: Target) -> str:
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    return UP if sock.recv(1) == b"\x01" else "silent"  # frame type 1: Connection.Start


CHECKS: dict[str, Callable[[socket.socket, Target], str]] = {
    "postgres": _postgres,
    "redis": _redis,
    "rabbitmq": _rabbitmq,
}


def check(t: Target, timeout: float = 1.0) -> str:
    try:
        with socket.create_connection((t.host, t.port), timeout=timeout) as sock:
            return CHECKS[t.name](sock, t)
    except TimeoutError:
        return "silent"
    except (ConnectionResetError, BrokenPipeError):
        return "starting"
    except OSError:
        return "down"


def poll(timeout: float, interval: float) -> Iterator[float]:
    """Yield the seconds elapsed every ``interval`` until ``timeout`` has passed."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < timeout:
        yield elapsed
        time.sleep(interval)


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def dev_ports(settings: Settings) -> dict[str, int]:
    # deploy/Procfile's waitingroom runs one process a port from TICKETING_WAITINGROOM_PORT up.
    waitingrooms = {
        f"waitingroom {i + 1}": port for i, port in enumerate(settings.waitingroom_ports)
    } | {f"frontdoor {i + 1}": port for i, port in enumerate(settings.frontdoor_ports)}
    return {
        "gateway": settings.gateway_port,
        "gateway metrics": settings.gateway_metrics_port,
        "catalog_api": settings.catalog_port,
        **waitingrooms,
        "typesense": settings.typesense_port,
        "search_sync metrics": settings.search_sync_metrics_port,
        "localstripe": settings.localstripe_port,
        "booking_worker metrics": settings.booking_worker_metrics_port,
        # deploy/Procfile's second worker serves its metrics one port higher.
        "booking_worker_2 metrics": settings.booking_worker_metrics_port + 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.probe")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status")
    wait = sub.add_parser("wait")
    wait.add_argument("names", nargs="+", choices=sorted(CHECKS))
    wait.add_argument("--timeout", type=float, default=120.0)
    sub.add_parser("ports-free")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "ports-free":  # the services' ports: no server's URL is read
        return ports_free(settings)
    known = targets(settings)
    if args.command == "status":
        for t in known.values():
            print(t.name, check(t), "local" if t.local else "remote", t.host, t.port)
        return 0
    return wait_for({n: known[n] for n in args.names}, args.timeout)


def ports_free(settings: Settings) -> int:
    """0 when every development port is free, else 1 with each busy one named."""
    wildcard = ("0.0.0.0", "::")  # noqa: S104 - recognised here, nothing binds to it
    host = "127.0.0.1" if settings.host in wildcard else settings.host
    busy = [(n, p) for n, p in dev_ports(settings).items() if port_in_use(host, p)]
    for name, port in busy:
        print(f"port {port} ({name}) is already in use on {host}", file=sys.stderr)
    return 1 if busy else 0


def wait_for(pending: dict[str, Target], timeout: float) -> int:
    """0 once every server answers, AUTH_EXIT when one wants a password, 1 at the timeout."""
    states: dict[str, str] = {}
    for elapsed in poll(timeout, 0.25):
        for name, t in list(pending.items()):
            states[name] = check(t)
            if states[name] == UP:
                if elapsed > 0.1:  # say so only when there was something to wait for
                    print(f"setup: {name} answers on {t.host}:{t.port} after {elapsed:.1f}s")
                del pending[name]
            elif states[name] == "auth":
                print(f"setup: {name} on {t.host}:{t.port} wants a password", file=sys.stderr)
                return AUTH_EXIT
        if not pending:
            return 0
    for name, t in pending.items():
        print(
            f"setup: {name} on {t.host}:{t.port} not ready after {timeout:.0f}s "
            f"(state: {states.get(name, 'unknown')})",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())

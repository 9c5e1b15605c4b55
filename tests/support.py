"""Helpers the tests share: ports, polling with a deadline, tokens, settings variants."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
import jwt

from ticketing.amqp_topology import QueueSpec, TopologySpec
from ticketing.config import Settings

T = TypeVar("T")


# Below Linux's ephemeral range (32768-60999 by default), from which the kernel picks the
# local ports of outgoing connections: a port found free there can be taken by some client
# socket before the server the test starts binds it (seen: a booking worker that died on
# its metrics port, so a race test waited for three workers and saw two).
_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never handed out twice in this test run."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found in 20000-31999")


def consecutive_free_ports(count: int) -> int:
    """A free port whose ``count - 1`` successors are free too (for services that take one
    port a process from a first one)."""
    for _ in range(50):
        port = free_port()
        for successor in range(port + 1, port + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", successor))
                except OSError:
                    break
        else:
            _handed_out.update(range(port, port + count))
            return port
    raise RuntimeError(f"no {count} consecutive free ports")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float, what: str
) -> T:
    """Poll ``probe`` until ``check`` accepts its result; fail with the last result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if check(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def settings_with(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


def make_token(
    settings: Settings,
    sub: str = "alice",
    roles: list[str] | None = None,
    ttl: int = 600,
    **extra: Any,
) -> str:
    now = int(time.time())
    claims = {"sub": sub, "exp": now + ttl, "iat": now, "roles": roles or [], **extra}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def auth_header(settings: Settings, sub: str = "alice", roles: list[str] | None = None) -> dict:
    return {"Authorization": "Bearer " + make_token(settings, sub, roles)}


def work_topology(name: str) -> TopologySpec:
    """A test's own RabbitMQ topology: exchange ``name``, one work queue ``name.work``
    (routing key ``work``) and its dead-letter pair ``name.dead``."""
    return TopologySpec(
        exchange=name,
        exchange_type=aio_pika.ExchangeType.DIRECT,
        dead_exchange=f"{name}.dead",
        dead_queue=f"{name}.dead",
        queues=(QueueSpec(f"{name}.work", "work"),),
    )

"""Helpers the tests share: ports, polling with a deadline, tokens, settings variants."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jwt

from ticketing.config import Settings

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

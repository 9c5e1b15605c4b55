"""Waiting that a stop request interrupts, and retry backoff, for the long-running loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aio_pika.abc import AbstractIncomingMessage

from ticketing.dependencies import dependency_of
from ticketing.metrics import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


async def wait_any(*events: asyncio.Event, seconds: float | None) -> None:
    """Return when any event is set or ``seconds`` have passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)


class Backoff:
    """Exponential delay between retries of a failing dependency, reset by a success."""

    def __init__(self, first: float = 0.25, most: float = 2.0) -> None:
        self.first = first
        self.most = most
        self.failures = 0

    def next_delay(self) -> float:
        delay: float = min(self.most, self.first * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self, stop: asyncio.Event) -> None:
        await wait_any(stop, seconds=self.next_delay())


async def keep_running(
    what: str,
    session: Callable[[Backoff], Awaitable[None]],
    stop: asyncio.Event,
    service: str,
) -> None:
    """Run ``session`` until ``stop`` is set, reconnecting with backoff while a dependency
    is down; the session resets the backoff once it is connected and working. Any other
    exception is a bug and propagates."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            await session(backoff)
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is None:
                raise
            DEPENDENCY_ERRORS.labels(service, dependency).inc()
            log.warning("%s: %s unavailable, retrying: %s", what, dependency, exc)
            await backoff.sleep(stop)


async def gather_batch(
    buffer: asyncio.Queue[T],
    stop: asyncio.Event,
    lost: asyncio.Event,
    max_size: int,
    wait_seconds: float,
    size: Callable[[T], int] = lambda _: 1,
) -> list[T]:
    """Items until they count ``max_size`` (each counts ``size(item)``; the last one taken
    may overshoot): the first waited for (until ``stop`` or ``lost``), then whatever
    arrives within ``wait_seconds`` more; [] when stopping or disconnected."""
    first = await _first_item(buffer, stop, lost)
    if first is None:
        return []
    batch = [first]
    total = size(first)
    deadline = time.monotonic() + wait_seconds
    while total < max_size:
        if buffer.empty():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(buffer.get(), remaining))
            except TimeoutError:
                break
        else:
            batch.append(buffer.get_nowait())
        total += size(batch[-1])
    return batch


async def _first_item(
    buffer: asyncio.Queue[T], stop: asyncio.Event, lost: asyncio.Event
) -> T | None:
    """The next item as soon as it arrives, or None once ``stop`` or ``lost`` is set. (It
    used to look every 0.2 s, so a batch could sit in the buffer that long while the
    worker slept: most of the booking path's latency under load.)"""
    if not buffer.empty():
        return buffer.get_nowait()
    getter = asyncio.ensure_future(buffer.get())
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
    try:
        await asyncio.wait([getter, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not getter.done():
            getter.cancel()  # an item not yet taken stays in the queue
        await asyncio.gather(getter, *waiters, return_exceptions=True)
    if getter.cancelled() or getter.exception() is not None:
        return None
    return getter.result()


async def requeue_after_backoff(
    backoff: Backoff, stop: asyncio.Event, messages: list[AbstractIncomingMessage]
) -> float:
    """Hand a batch back to its queue after the next backoff delay, so a failing dependency
    is not retried in a hot loop; a stop request cuts the wait short. Returns the delay."""
    delay = backoff.next_delay()
    await wait_any(stop, seconds=delay)
    for message in messages:
        await message.nack(requeue=True)
    return delay

"""Requests that arrive together share one round trip (natural batching).

Under a surge a process asks Redis the same kind of question for hundreds of fans a
second, and the client library's per-call overhead, not Redis, becomes the cost. Here a
call that finds nothing in flight for its key leaves at once (no added latency when it is
quiet); calls that arrive while one is in flight wait for it and then leave together, so
the batch size follows the load by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

# What one batch's call answers: a result per item, in order; an exception instance in
# place of a result fails that item's caller alone.
Send = Callable[[K, list[T]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[K, T, R]):
    """One ``send`` in flight per key; items submitted meanwhile go in the next one
    (at most ``max_batch`` per call). A failing ``send`` fails that batch's callers."""

    def __init__(self, send: Send[K, T, R], max_batch: int = 256) -> None:
        self._send = send
        self._max_batch = max_batch
        self._waiting: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._senders: dict[K, asyncio.Task[None]] = {}

    async def submit(self, key: K, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, future))
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._drain(key))
        return await future

    async def _drain(self, key: K) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while waiting := self._waiting.get(key):
                batch = waiting[: self._max_batch]
                del waiting[: len(batch)]
                try:
                    results = await self._send(key, [item for item, _ in batch])
                except Exception as exc:  # any failure: every caller hears it
                    for _, future in batch:
                        _settle(future, exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
                batch = []
        finally:
            # Cancelled (shutdown): nobody may wait forever for a call that never leaves.
            for _, future in batch + self._waiting.pop(key, []):
                future.cancel()
            self._senders.pop(key, None)


def _settle(future: asyncio.Future[R], result: R | BaseException) -> None:
    if future.done():  # its caller gave up (cancelled); the others still hear theirs
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)

"""Which payment attempts this worker process is charging right now, visible to every worker.

Two copies of one confirm (a client retry racing its original with the same
Idempotency-Key, or a redelivery while the first copy still runs) would otherwise both find
the attempt 'pending' with no PaymentIntent yet and both charge, and our idempotency must
not lean on Stripe's. So an attempt is charged only under a PostgreSQL session advisory lock
on its key: a worker that dies mid-charge lets go with its connection, and the next copy
settles the attempt from Stripe's record at once instead of waiting out a lease.

All of a process's attempt locks live on ONE connection of their own. A lock per pooled
connection would pin a database connection for the length of every card payment, and with
dozens of payments in flight per worker that is more connections than PostgreSQL has. A
session's advisory locks are re-entrant within the session, so this process's own attempts
are told apart in memory first.

That one connection answers one statement at a time, and at an on-sale dozens of payments
start and end at once: the locks and unlocks asked for while a statement is out go
together in the next one, so each costs a round trip of its own only when the worker is
idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg

log = logging.getLogger(__name__)

# Unlocks and locks in one statement; a key is never in both (see AttemptLocks._held), so
# the order PostgreSQL runs them in does not matter.
_LOCK_AND_UNLOCK = """
SELECT ARRAY(SELECT pg_advisory_unlock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k),
       ARRAY(SELECT pg_try_advisory_lock(hashtextextended(k, 7))
             FROM unnest($2::text[]) WITH ORDINALITY AS asked(k, n) ORDER BY n)"""
_POLL_SECONDS = 0.05


class AttemptLocks:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._conn: asyncpg.Connection | None = None
        # Keys this process holds, is asking for or is letting go of: a second ask for one
        # is refused here, since the session would grant it again.
        self._held: set[str] = set()
        self._to_lock: list[tuple[str, asyncio.Future[bool]]] = []
        self._to_unlock: list[tuple[str, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def try_lock(self, key: str) -> bool:
        if key in self._held:
            return False
        self._held.add(key)
        asked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_lock.append((key, asked))
        self._send()
        return await asked

    async def unlock(self, key: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_unlock.append((key, done))
        self._send()
        await done

    @contextlib.asynccontextmanager
    async def hold(self, key: str, deadline: float) -> AsyncIterator[bool]:
        """Yields True once ``key`` is this process's, False if still taken at ``deadline``
        (time.monotonic())."""
        while not await self.try_lock(key):
            if time.monotonic() > deadline:
                yield False
                return
            await asyncio.sleep(_POLL_SECONDS)
        try:
            yield True
        finally:
            await self.unlock(key)

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        # The session ends below, and every lock with it.
        self._fail(self._to_lock, self._to_unlock, asyncpg.InterfaceError("attempt locks closed"))
        self._to_lock, self._to_unlock = [], []
        self._held.clear()
        await self._drop()

    def _send(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        """Send what was asked for, all of it in one statement, until nothing is left.
        Runs as a task of its own: a caller cancelled meanwhile does not cancel a statement
        that carries other callers' keys (a lock granted to it is let go again)."""
        while self._to_lock or self._to_unlock:
            locks, self._to_lock = self._to_lock, []
            unlocks, self._to_unlock = self._to_unlock, []
            try:
                conn = await self._connection(asking=len(locks))
                row = await conn.fetchrow(
                    _LOCK_AND_UNLOCK, [k for k, _ in unlocks], [k for k, _ in locks]
                )
                granted = row[1] if row is not None else []
            except asyncio.CancelledError:  # closing
                self._fail(locks, unlocks, asyncpg.InterfaceError("attempt locks closed"))
                raise
            except Exception as exc:
                # Which of these locks the session now holds is unknown: end it, which lets
                # go of every one (the attempts still in flight are then guarded only in
                # this process, as when the session is lost).
                log.warning("attempt locks: statement failed, dropping the session: %s", exc)
                await self._drop()
                self._fail(locks, unlocks, exc)
                continue
            for key, done in unlocks:
                self._held.discard(key)
                if not done.done():
                    done.set_result(None)
            for (key, asked), got in zip(locks, granted, strict=True):
                if asked.done():  # its caller gave up: let go of what it was granted
                    if got:
                        self._to_unlock.append((key, asyncio.get_running_loop().create_future()))
                    else:
                        self._held.discard(key)
                    continue
                if not got:
                    self._held.discard(key)
                asked.set_result(got)

    def _fail(
        self,
        locks: list[tuple[str, asyncio.Future[bool]]],
        unlocks: list[tuple[str, asyncio.Future[None]]],
        exc: BaseException,
    ) -> None:
        """Answer a batch whose statement did not complete: its locks are refused with
        ``exc``, its unlocks done (the session that held them is ended)."""
        for key, done in unlocks:
            self._held.discard(key)
            if not done.done():
                done.set_result(None)
        for key, asked in locks:
            self._held.discard(key)
            if not asked.done():
                asked.set_exception(exc)

    async def _connection(self, asking: int) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            if self._conn is not None and len(self._held) > asking:
                # The old session ended, and with it the locks other workers could see: the
                # attempts still in flight here are guarded only in this process now. A
                # second charge of one is settled as a duplicate and refunded.
                in_flight = len(self._held) - asking
                log.warning("attempt locks: session lost, %d attempts in flight", in_flight)
            self._conn = await asyncpg.connect(self._database_url, timeout=5)
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

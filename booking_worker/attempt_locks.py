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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg

log = logging.getLogger(__name__)

_LOCK = "SELECT pg_try_advisory_lock(hashtextextended($1, 7))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 7))"
_POLL_SECONDS = 0.05


class AttemptLocks:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self._io = asyncio.Lock()  # one query at a time on the shared connection
        self._held: set[str] = set()

    async def try_lock(self, key: str) -> bool:
        async with self._io:
            if key in self._held:
                return False
            conn = await self._connection()
            if not await conn.fetchval(_LOCK, key):
                return False
            self._held.add(key)
            return True

    async def unlock(self, key: str) -> None:
        async with self._io:
            self._held.discard(key)
            conn = self._conn
            if conn is None or conn.is_closed():
                return  # the session ended, and its locks with it
            try:
                await conn.execute(_UNLOCK, key)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("attempt lock %s: unlock failed, dropping the session: %s", key, exc)
                await self._drop()

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
        async with self._io:
            self._held.clear()
            await self._drop()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            if self._held:
                # The old session ended, and with it the locks other workers could see: the
                # attempts still in flight here are guarded only in this process now. A
                # second charge of one is settled as a duplicate and refunded.
                log.warning("attempt locks: session lost, %d attempts in flight", len(self._held))
            self._conn = await asyncpg.connect(self._database_url, timeout=5)
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

"""Attempt locks (booking_worker.attempt_locks) against a real PostgreSQL: the locks and
unlocks of many payments asked for at once go in one statement, and still each attempt's
key is granted to one payment at a time, across processes and inside one."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from booking_worker.attempt_locks import AttemptLocks


class CountingLocks(AttemptLocks):
    """Counts the statements sent (one connection look-up each)."""

    statements = 0

    async def _connection(self, asking: int) -> asyncpg.Connection:
        self.statements += 1
        return await super()._connection(asking)


@pytest.fixture
async def workers(database_url: str) -> AsyncIterator[list[CountingLocks]]:
    """Two worker processes' attempt locks."""
    workers = [CountingLocks(database_url) for _ in range(2)]
    yield workers
    for locks in workers:
        await locks.close()


async def test_a_session_grants_its_own_lock_again(database_url: str) -> None:
    """The control for the next test: PostgreSQL grants one session the same advisory lock
    twice, so two payments of one process on its one session are told apart in memory."""
    conn = await asyncpg.connect(database_url)
    try:
        key = "control-" + uuid.uuid4().hex
        take = "SELECT pg_try_advisory_lock(hashtextextended($1, 7))"
        assert await conn.fetchval(take, key) is True
        assert await conn.fetchval(take, key) is True
    finally:
        await conn.close()


async def test_many_payments_at_once_share_statements_and_each_key_has_one_holder(
    workers: list[CountingLocks],
) -> None:
    keys = [f"confirm:{uuid.uuid4()}:r" for _ in range(40)]
    # Every key asked for twice in each of two workers, all at once.
    asks = [(w, key) for key in keys for w in (0, 0, 1, 1)]
    granted = await asyncio.gather(*(workers[w].try_lock(key) for w, key in asks))
    holders = Counter(key for (_, key), got in zip(asks, granted, strict=True) if got)
    assert holders == Counter({key: 1 for key in keys})
    assert [w.statements for w in workers] == [1, 1]  # 80 asks each, one statement each

    # Let go of all of them at once; then every key can be taken again, by the other worker.
    owners = {key: w for (w, key), got in zip(asks, granted, strict=True) if got}
    await asyncio.gather(*(workers[w].unlock(key) for key, w in owners.items()))
    retaken = await asyncio.gather(*(workers[1 - w].try_lock(key) for key, w in owners.items()))
    assert all(retaken)


async def test_a_lock_granted_to_a_payment_that_gave_up_is_let_go(
    workers: list[CountingLocks],
) -> None:
    first, other = workers
    key = f"confirm:{uuid.uuid4()}:r"
    asked = asyncio.ensure_future(first.try_lock(key))
    await asyncio.sleep(0)  # asked: its statement is queued, not yet answered
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    assert first._sender is not None
    await first._sender  # sends until nothing is left to send
    assert first.statements == 2  # the lock it was granted, then the unlock
    assert await other.try_lock(key) is True


async def test_closing_answers_every_payment_still_asking(database_url: str) -> None:
    locks = AttemptLocks(database_url)
    asks = [asyncio.ensure_future(locks.try_lock(f"k-{i}")) for i in range(5)]
    await asyncio.sleep(0)
    await locks.close()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, asyncpg.InterfaceError) for r in results), results

"""The fair start's record in PostgreSQL: the commitment made before on-sale, then the seed
and the drawn order. Redis holds the live queue and may lose it; this record is what
``GET /queue/{event_id}/fairness`` publishes, and a draw once recorded is final (the
schema refuses to change it, see migration 0005).

A commitment whose seed Redis lost before the draw is kept as superseded, with the new
one's epoch, so an auditor sees that the room had to commit again and when.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg

from ticketing.domain.queue import OrderCheck, commitment, order_digest

# Verification reads the order this many refs at a time, so a pre-queue of hundreds of
# thousands neither loads at once nor holds the event loop for long.
VERIFY_CHUNK = 10_000
_VERIFIED_KEPT = 1_000
# A draw of a large pre-queue is one big INSERT; PostgreSQL gets longer than the pool's
# per-command default for it.
SAVE_TIMEOUT_SECONDS = 60

# The pre-queue's draws; a registered presale's are kept alike (waitingroom/queue/
# presale_draw.py, migration 0008), in tables of its own named the same way.
QUEUE_DRAW = "queue_draw"
_GET = """
SELECT event_id, epoch, commitment, committed_at, seed, revealed_at, total, order_sha256
FROM {t}s WHERE event_id = $1
"""

# The column names come from the fixed tuple below, never from a request.
_PAGES = {
    by: f"""SELECT member_ref FROM {{t}}_members
            WHERE event_id = $1 AND {by} > $2 AND {by} <= $2 + $3 ORDER BY {by}"""  # noqa: S608
    for by in ("position", "member_rank")
}


class DrawBusy(Exception):
    """Another process is committing or drawing this event right now; try again later."""


@dataclass(frozen=True, slots=True)
class DrawRecord:
    event_id: int
    epoch: int
    commitment: str
    committed_at: datetime
    seed: str | None
    revealed_at: datetime | None
    total: int | None
    order_sha256: str | None

    @property
    def drawn(self) -> bool:
        return self.seed is not None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DrawRecord:
        return cls(**dict(row))


class FairnessRecord:
    """``tables``: the draws' tables (``<tables>s``, ``<tables>_members``,
    ``<tables>_superseded``), also the name of the draw lock; one of the fixed names of
    the migrations, never from a request."""

    def __init__(self, pool: asyncpg.Pool, tables: str = QUEUE_DRAW) -> None:
        self.pool = pool
        self.tables = tables
        self._get = _GET.format(t=tables)
        self._pages = {by: sql.format(t=tables) for by, sql in _PAGES.items()}
        self._verified: dict[tuple[int, str], asyncio.Task[bool]] = {}

    # --- writes, each under the event's lock ----------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(self, event_id: int) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding the event's draw lock. Processes never wait for it (the
        admitter must keep ticking): a taken lock is :class:`DrawBusy`."""
        async with self.pool.acquire() as conn, conn.transaction():
            taken = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($2 || ':' || $1, 0))",
                str(event_id),
                self.tables,
            )
            if not taken:
                raise DrawBusy(event_id)
            # The pool's proxy forwards every Connection method to the connection it holds.
            yield cast("asyncpg.Connection", conn)

    async def commit(
        self, conn: asyncpg.Connection, event_id: int, new: str, committed_at: datetime
    ) -> str:
        """Record the commitment in force; 'new', 'same', 'superseded' (it replaced one
        whose seed was lost) or 'ignored' (drawn already, or older than the one on record)."""
        record = await self.get(event_id, conn)
        if record is None:
            await conn.execute(
                f"INSERT INTO {self.tables}s (event_id, commitment, committed_at) "  # noqa: S608
                "VALUES ($1, $2, $3)",
                event_id,
                new,
                committed_at,
            )
            return "new"
        if record.commitment == new:
            return "same"
        if record.drawn or committed_at <= record.committed_at:
            return "ignored"
        await self._supersede(conn, record, new, committed_at)
        return "superseded"

    async def save_draw(
        self,
        conn: asyncpg.Connection,
        event_id: int,
        fair: dict[str, Any],
        order: Sequence[str],
    ) -> DrawRecord:
        """Record a draw (``fair``: commitment, committed_at, seed, revealed_at); the first
        recorded draw of an event wins and is returned."""
        record = await self.get(event_id, conn)
        if record is not None and record.drawn:
            return record
        if record is None:
            await self.commit(conn, event_id, fair["commitment"], fair["committed_at"])
        elif record.commitment != fair["commitment"]:
            # The seed drawn with is not the one on record (Redis lost it and the room
            # committed again at the draw itself): the record says so.
            await self._supersede(conn, record, fair["commitment"], fair["committed_at"])
        rank = {ref: i for i, ref in enumerate(sorted(order), 1)}
        await conn.execute(
            f"""INSERT INTO {self.tables}_members (event_id, position, member_ref, member_rank)
               SELECT $1, t.position, t.ref, t.rank
               FROM unnest($2::text[], $3::integer[]) WITH ORDINALITY AS t(ref, rank, position)""",  # noqa: S608
            event_id,
            list(order),
            [rank[ref] for ref in order],
            timeout=SAVE_TIMEOUT_SECONDS,
        )
        await conn.execute(
            f"""UPDATE {self.tables}s SET seed = $2, revealed_at = $3, total = $4,
                 order_sha256 = $5 WHERE event_id = $1""",  # noqa: S608
            event_id,
            fair["seed"],
            fair["revealed_at"],
            len(order),
            order_digest(order),
        )
        saved = await self.get(event_id, conn)
        if saved is None:
            raise RuntimeError(f"event {event_id}: the draw just saved is not on record")
        return saved

    async def _supersede(
        self, conn: asyncpg.Connection, old: DrawRecord, new: str, committed_at: datetime
    ) -> None:
        await conn.execute(
            f"""INSERT INTO {self.tables}_superseded
                 (event_id, epoch, commitment, committed_at, superseded_at)
               VALUES ($1, $2, $3, $4, $5)""",  # noqa: S608
            old.event_id,
            old.epoch,
            old.commitment,
            old.committed_at,
            committed_at,
        )
        await conn.execute(
            f"""UPDATE {self.tables}s SET epoch = epoch + 1, commitment = $2,
                 committed_at = $3 WHERE event_id = $1""",  # noqa: S608
            old.event_id,
            new,
            committed_at,
        )

    # --- reads ----------------------------------------------------------------------------

    async def get(self, event_id: int, conn: asyncpg.Connection | None = None) -> DrawRecord | None:
        row = await (conn or self.pool).fetchrow(self._get, event_id)
        return None if row is None else DrawRecord.from_row(row)

    async def superseded(self, event_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"""SELECT epoch, commitment, committed_at, superseded_at
               FROM {self.tables}_superseded WHERE event_id = $1 ORDER BY epoch""",  # noqa: S608
            event_id,
        )

    async def order_page(self, event_id: int, offset: int, limit: int) -> list[str]:
        """Refs at positions offset+1 .. offset+limit, first drawn first."""
        return await self._page("position", event_id, offset, limit)

    async def members_page(self, event_id: int, offset: int, limit: int) -> list[str]:
        """The same members sorted by ref (what the order must be a permutation of)."""
        return await self._page("member_rank", event_id, offset, limit)

    async def _page(self, by: str, event_id: int, offset: int, limit: int) -> list[str]:
        # an index range, however deep the page
        rows = await self.pool.fetch(self._pages[by], event_id, offset, limit)
        return [row["member_ref"] for row in rows]

    async def positions(
        self, event_id: int, refs: Sequence[str], conn: asyncpg.Connection | None = None
    ) -> dict[str, int]:
        """Drawn positions (1 = first) of those of ``refs`` in the recorded order."""
        rows = await (conn or self.pool).fetch(
            f"""SELECT member_ref, position FROM {self.tables}_members
               WHERE event_id = $1 AND member_ref = ANY($2::text[])""",  # noqa: S608
            event_id,
            list(refs),
        )
        return {row["member_ref"]: row["position"] for row in rows}

    async def verified(self, record: DrawRecord) -> bool:
        """The recorded order checked whole, here: the seed matches the commitment, the
        order is sorted by the seed, and it has the recorded length and digest. Computed once
        per process and draw (a recorded draw never changes), shared by concurrent calls."""
        if record.seed is None:
            raise ValueError(f"event {record.event_id}: only a drawn record is verified")
        key = (record.event_id, record.seed)
        task = self._verified.get(key)
        if task is None or (task.done() and task.exception() is not None):
            if len(self._verified) >= _VERIFIED_KEPT:
                self._verified.clear()
            task = asyncio.ensure_future(self._verify(record))
            self._verified[key] = task
        # shielded: a caller that goes away does not cancel the check others wait on
        return await asyncio.shield(task)

    async def _verify(self, record: DrawRecord) -> bool:
        if record.seed is None:
            raise ValueError(f"event {record.event_id}: only a drawn record is verified")
        check = OrderCheck(record.seed)
        while True:
            page = await self.order_page(record.event_id, check.count, VERIFY_CHUNK)
            check.feed(page)
            if len(page) < VERIFY_CHUNK:
                break
            await asyncio.sleep(0)  # let requests in between chunks
        return (
            commitment(record.seed) == record.commitment
            and check.in_order
            and check.count == record.total
            and check.digest() == record.order_sha256
        )

"""Full reindex with zero downtime: build a new collection, swap the alias, drop the old one.

Searches go through the alias, which points at the old collection until the new one is
complete, so they never see a partial index. Changes committed while the new collection was
being built (the live consumer writes them into the old one) are replayed from the outbox
into the new collection right after the swap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import asyncpg
import typesense
from typesense.exceptions import ObjectAlreadyExists, ObjectNotFound

from search_sync.indexer import import_documents, sync_events
from ticketing.db.events import fetch_event_views
from ticketing.dependencies import TYPESENSE_ERRORS, DependencyDown
from ticketing.messages import EVENT_CHANGED
from ticketing.search_index import collection_schema, to_document

if TYPE_CHECKING:
    from typesense.types.collection import CollectionCreateSchema

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Batches in flight at once; building views is Postgres-bound, importing Typesense-bound.
FILL_WORKERS = 3
PROGRESS_EVERY = 10_000
# One reindex at a time across all search_sync processes and one-off commands.
_LOCK_KEY = "search_sync.reindex"
# An outbox row can get its id before the watermark is read but commit after the scan read
# the events; replaying rows this much older than the start covers any such transaction.
_REPLAY_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class ReindexResult:
    collection: str
    indexed: int
    replayed: int
    dropped: str | None
    seconds: float


async def alias_target(client: typesense.AsyncClient, alias: str) -> str | None:
    try:
        found = await client.aliases[alias].retrieve()
    except ObjectNotFound:
        return None
    return found["collection_name"]


async def reindex(
    pool: asyncpg.Pool,
    client: typesense.AsyncClient,
    alias: str,
    *,
    batch_size: int = BATCH_SIZE,
    only_if_missing: bool = False,
) -> ReindexResult | None:
    """Rebuild ``alias``'s collection from Postgres. With ``only_if_missing`` (bootstrap),
    do nothing when the alias already exists, and return None."""
    async with pool.acquire() as lock_conn:
        await lock_conn.execute("SELECT pg_advisory_lock(hashtext($1))", _LOCK_KEY)
        try:
            if only_if_missing and await alias_target(client, alias) is not None:
                return None
            return await _reindex_locked(pool, client, alias, batch_size)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _LOCK_KEY)


async def _reindex_locked(
    pool: asyncpg.Pool, client: typesense.AsyncClient, alias: str, batch_size: int
) -> ReindexResult:
    started = time.monotonic()
    [(watermark, started_at)] = await pool.fetch(
        "SELECT coalesce(max(id), 0), clock_timestamp() FROM outbox"
    )
    name = f"{alias}_{time.time_ns() // 1_000_000}"
    log.info("reindex: building collection %s for alias %s", name, alias)
    try:
        # The schema is a plain dict (ticketing.search_index); Typesense's stubs want their
        # TypedDict of the same shape.
        await client.collections.create(cast("CollectionCreateSchema", collection_schema(name)))
    except ObjectAlreadyExists:
        # Ours: the client retried on another node a create whose answer was lost (the name
        # is this reindex's own, and only one reindex runs at a time).
        pass
    except TYPESENSE_ERRORS as exc:
        raise DependencyDown("typesense", exc) from exc
    swapped = False
    try:
        indexed = await _fill(pool, client, name, batch_size)
        previous = await alias_target(client, alias)
        await client.aliases.upsert(alias, {"collection_name": name})
        swapped = True
        log.info("reindex: alias %s now points at %s (was %s)", alias, name, previous)
        replayed = await _replay_changes(pool, client, name, watermark, started_at - _REPLAY_MARGIN)
    except BaseException:
        # Once the alias points at it, the new collection is live. Not asked again then: a
        # cluster's follower may answer with the alias as it was a moment ago.
        if not swapped:
            await _drop_unless_live(client, alias, name)
        raise
    if previous is not None and previous != name:
        await client.collections[previous].delete()
        log.info("reindex: dropped old collection %s", previous)
    seconds = time.monotonic() - started
    log.info("reindex: %d events indexed, %d replayed in %.1fs", indexed, replayed, seconds)
    return ReindexResult(name, indexed, replayed, previous, seconds)


async def _drop_unless_live(client: typesense.AsyncClient, alias: str, name: str) -> None:
    try:
        if await alias_target(client, alias) != name:
            await client.collections[name].delete()
            log.warning("reindex failed: dropped unfinished collection %s", name)
    except TYPESENSE_ERRORS as exc:
        log.warning("reindex failed and could not drop collection %s: %s", name, exc)


async def _fill(
    pool: asyncpg.Pool, client: typesense.AsyncClient, collection: str, batch_size: int
) -> int:
    """Index every event, ``batch_size`` at a time, by FILL_WORKERS workers at once: while
    one waits for Postgres to build its views, another imports into Typesense."""
    pages = _event_id_pages(pool, batch_size)
    next_page = asyncio.Lock()
    indexed = 0

    async def worker() -> None:
        nonlocal indexed
        while True:
            async with next_page:
                ids = await anext(pages, None)
            if ids is None:
                return
            views = await fetch_event_views(pool, ids)
            documents = [to_document(views[i]) for i in ids if i in views]
            _check_rejected(await import_documents(client, collection, documents))
            before, indexed = indexed, indexed + len(documents)
            if indexed // PROGRESS_EVERY > before // PROGRESS_EVERY:
                log.info("reindex: %d events so far", indexed)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(FILL_WORKERS):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        # Callers handle "Postgres/Typesense down" by type; one cause is enough to say why.
        raise failed.exceptions[0] from None
    finally:
        await pages.aclose()
    return indexed


async def _event_id_pages(pool: asyncpg.Pool, batch_size: int) -> AsyncGenerator[list[int], None]:
    last_id = 0
    while True:
        rows = await pool.fetch(
            "SELECT id FROM events WHERE id > $1 ORDER BY id LIMIT $2", last_id, batch_size
        )
        if not rows:
            return
        last_id = rows[-1]["id"]
        yield [row["id"] for row in rows]


def _check_rejected(rejected: dict[int, str]) -> None:
    if rejected:
        event_id, reason = next(iter(rejected.items()))
        raise RuntimeError(
            f"typesense refused {len(rejected)} documents, e.g. event {event_id}: {reason}"
        )


async def _replay_changes(
    pool: asyncpg.Pool,
    client: typesense.AsyncClient,
    collection: str,
    watermark: int,
    since: object,
) -> int:
    rows = await pool.fetch(
        """
        SELECT DISTINCT aggregate_id::bigint AS event_id FROM outbox
        WHERE topic = $1 AND (id > $2 OR created_at >= $3)
        """,
        EVENT_CHANGED,
        watermark,
        since,
    )
    event_ids = sorted(row["event_id"] for row in rows)
    for start in range(0, len(event_ids), 1000):
        outcome = await sync_events(pool, client, collection, event_ids[start : start + 1000])
        _check_rejected(outcome.rejected)
    return len(event_ids)

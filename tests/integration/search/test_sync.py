"""search_sync against real Postgres, RabbitMQ, Redis and Typesense: a committed catalog change
becomes searchable within seconds, and no failure of a piece on the way loses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY

from search_sync.consumer import SearchSyncConsumer
from search_sync.reindex import alias_target, reindex
from search_sync.relay import OutboxRelay
from search_sync.topology import (
    DEAD_QUEUE,
    ERROR_HEADER,
    OUTBOX_ID_HEADER,
    QUEUE,
    declare_topology,
)
from search_sync.worker import open_resources
from tests.integration.search.support import (
    drop_alias,
    indexed_name,
    insert_events,
    new_name,
    rename,
    wait_indexed,
)
from tests.servers import PG_BASE, RUN_ID, TypesenseServer
from tests.support import eventually, settings_with
from ticketing.cache import event_key, put_views
from ticketing.config import Settings
from ticketing.db import migrate
from ticketing.db.events import fetch_event_views
from ticketing.db.outbox import record_event_changed
from ticketing.messages import CATALOG_EXCHANGE, EVENT_CHANGED
from ticketing.search_index import make_client


@pytest.fixture(scope="module")
async def sync_settings(settings: Settings) -> AsyncIterator[Settings]:
    """The run's settings with an alias of these tests' own, removed afterwards."""
    mine = settings_with(settings, typesense_collection=settings.typesense_collection + "_sync")
    yield mine
    await drop_alias(mine)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def catalog(pool: asyncpg.Pool, sync_settings: Settings) -> AsyncIterator[list[int]]:
    """A few hundred events, indexed once through the alias; deleted at the end."""
    async with pool.acquire() as conn:
        ids = await insert_events(conn, [f"Concert {i}" for i in range(300)], "Berlin")
    async with open_resources(sync_settings) as res:
        await reindex(res.pool, res.indexing, sync_settings.typesense_collection)
    yield ids
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM tickets WHERE event_id = ANY($1)", ids)
        await conn.execute("DELETE FROM events WHERE id = ANY($1)", ids)


@pytest.fixture
async def search(sync_settings: Settings) -> AsyncIterator[Any]:
    client = make_client(sync_settings)
    yield client
    await client.api_call.aclose()


# --- running the pieces in-process ----------------------------------------------------------


@contextlib.asynccontextmanager
async def running(settings: Settings, *, relays: int = 1, consumer: bool = True):
    stop = asyncio.Event()
    async with open_resources(settings) as res:
        parts: list[Any] = [OutboxRelay(settings) for _ in range(relays)]
        if consumer:
            parts.append(
                SearchSyncConsumer(
                    settings, pool=res.pool, redis=res.redis, typesense_client=res.search
                )
            )
        tasks = [asyncio.create_task(part.run(stop)) for part in parts]
        try:
            yield
        finally:
            stop.set()
            # A stopped worker must come down promptly, and re-raise anything it died of.
            await asyncio.wait_for(asyncio.gather(*tasks), 15)


@contextlib.asynccontextmanager
async def tap(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A private queue receiving a copy of every event-changed message the relay publishes."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        topology = await declare_topology(channel, settings.amqp_queue_type)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(topology.exchange, routing_key=EVENT_CHANGED)
        yield queue
    finally:
        await connection.close()


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    messages = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        messages.append(message)
    return messages


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the tests -------------------------------------------------------------------------------


async def test_committed_change_is_searchable_within_five_seconds(
    pool, catalog, sync_settings, search
):
    alias = sync_settings.typesense_collection
    name = new_name()
    lag_before = metric("ticketing_search_sync_lag_seconds_count")
    async with running(sync_settings):
        started = time.monotonic()
        await rename(pool, catalog[0], name)
        result = await eventually(
            lambda: search.collections[alias].documents.search(
                {"q": name, "query_by": "name,performer_name,venue_name"}
            ),
            lambda r: (
                [
                    (h["document"]["id"], json.loads(h["document"]["view"])["name"])
                    for h in r["hits"]
                ]
                == [(str(catalog[0]), name)]
            ),
            5,
            "the renamed event to be found, with its new view",
        )
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert json.loads(result["hits"][0]["document"]["view"])["name"] == name
    assert metric("ticketing_search_sync_lag_seconds_count") > lag_before


async def test_change_invalidates_the_cached_view(pool, catalog, sync_settings, search):
    redis_prefix = sync_settings.redis_prefix
    async with open_resources(sync_settings) as res:
        stale = (await fetch_event_views(pool, [catalog[1]]))[catalog[1]]
        await put_views(res.redis, redis_prefix, [stale], 600)
        assert await res.redis.exists(event_key(redis_prefix, catalog[1]))
        name = new_name()
        async with running(sync_settings):
            await rename(pool, catalog[1], name)
            await wait_indexed(search, sync_settings.typesense_collection, catalog[1], name)
        assert not await res.redis.exists(event_key(redis_prefix, catalog[1]))


async def test_rolled_back_change_publishes_nothing(pool, catalog, sync_settings):
    async with tap(sync_settings) as queue, running(sync_settings, consumer=False):
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("UPDATE events SET name = 'Never' WHERE id = $1", catalog[2])
            await record_event_changed(conn, catalog[2], "edited")
            await tx.rollback()
        # A change committed after the rolled-back one: once it has arrived, the other one
        # would have arrived too.
        await rename(pool, catalog[3], new_name())
        seen: list[int] = []

        async def received() -> list[int]:
            seen.extend(json.loads(m.body)["event_id"] for m in await drain(queue))
            return seen

        await eventually(received, lambda ids: catalog[3] in ids, 5, "the committed change")
    assert catalog[2] not in seen


async def test_relay_that_was_down_catches_up(pool, catalog, sync_settings, search):
    alias = sync_settings.typesense_collection
    names = {event_id: new_name() for event_id in catalog[4:7]}
    async with running(sync_settings, relays=0):  # consumer only: the relay is down
        for event_id, name in names.items():
            await rename(pool, event_id, name)
        unpublished = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND aggregate_id = ANY($1)",
            [str(i) for i in names],
        )
        assert unpublished == len(names)
        async with running(sync_settings, consumer=False):
            for event_id, name in names.items():
                await wait_indexed(search, alias, event_id, name)


async def test_messages_wait_in_the_queue_while_the_consumer_is_down(
    pool, catalog, sync_settings, search
):
    name = new_name()
    async with running(sync_settings, consumer=False):
        await rename(pool, catalog[7], name)
        await eventually(
            lambda: pool.fetchval(
                "SELECT bool_and(published_at IS NOT NULL) FROM outbox WHERE aggregate_id = $1",
                str(catalog[7]),
            ),
            lambda published: published,
            5,
            "the change to be published",
        )
    assert await indexed_name(search, sync_settings.typesense_collection, catalog[7]) != name
    connection = await aio_pika.connect(sync_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, passive=True)
        assert queue.declaration_result.message_count >= 1
    async with running(sync_settings, relays=0):
        await wait_indexed(search, sync_settings.typesense_collection, catalog[7], name)


async def test_poison_messages_go_to_the_dead_letter_queue_with_the_reason(
    pool, catalog, sync_settings, search
):
    marker = secrets.token_hex(4)
    poison = {
        f"bad-json-{marker}": b"{not json",
        f"bad-version-{marker}": json.dumps(
            {"type": EVENT_CHANGED, "v": 99, "event_id": catalog[8]}
        ).encode(),
    }
    connection = await aio_pika.connect(sync_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = await declare_topology(channel, sync_settings.amqp_queue_type)
        exchange = await channel.get_exchange(CATALOG_EXCHANGE)
        for message_id, body in poison.items():
            await exchange.publish(
                aio_pika.Message(body, message_id=message_id), routing_key=EVENT_CHANGED
            )
        name = new_name()
        async with running(sync_settings):
            await rename(pool, catalog[8], name)  # a good message behind the bad ones
            await wait_indexed(search, sync_settings.typesense_collection, catalog[8], name)
            reasons: dict[str, str] = {}

            async def dead_letters() -> dict[str, str]:
                for message in await drain(topology.dead_queue):
                    reasons[message.message_id or ""] = str(message.headers.get(ERROR_HEADER))
                return reasons

            await eventually(dead_letters, lambda r: set(poison) <= set(r), 5, "dead letters")
    assert topology.dead_queue.name == DEAD_QUEUE
    assert "bad JSON" in reasons[f"bad-json-{marker}"]
    assert "unsupported version 99" in reasons[f"bad-version-{marker}"]
    assert metric("ticketing_search_sync_dead_lettered_total", kind="bad_message") >= 2


async def test_changes_made_while_typesense_is_down_apply_after_it_returns(
    pool, catalog, sync_settings
):
    own = TypesenseServer()  # not the shared server: other tests keep searching that one
    own.start()
    try:
        settings = settings_with(sync_settings, typesense_url=own.url)
        async with open_resources(settings) as res:
            await reindex(res.pool, res.indexing, settings.typesense_collection)
        client = make_client(settings)
        failures_before = metric("ticketing_search_sync_failures_total", dependency="typesense")
        name = new_name()
        async with running(settings):
            await asyncio.to_thread(own.stop)
            await rename(pool, catalog[9], name)
            await eventually(
                lambda: asyncio.sleep(
                    0, metric("ticketing_search_sync_failures_total", dependency="typesense")
                ),
                lambda failures: failures > failures_before,
                10,
                "the consumer to fail a batch",
            )
            await asyncio.to_thread(own.start)  # the consumer keeps retrying meanwhile
            await wait_indexed(client, settings.typesense_collection, catalog[9], name, 15)
        await client.api_call.aclose()
    finally:
        own.remove()


async def test_reindex_swaps_collections_while_searches_keep_answering(
    pool, catalog, sync_settings, search
):
    alias = sync_settings.typesense_collection
    before = await alias_target(search, alias)
    query = {"q": "*", "query_by": "name", "filter_by": "city:=Berlin", "per_page": 1}
    expected = (await search.collections[alias].documents.search(query))["found"]
    assert expected >= len(catalog)
    searches = 0
    failures: list[str] = []
    done = asyncio.Event()

    async def keep_searching() -> None:
        nonlocal searches
        while not done.is_set():
            try:
                found = (await search.collections[alias].documents.search(query))["found"]
                if found != expected:
                    failures.append(f"found {found} of {expected}")
            except Exception as exc:  # any failure at all is what this test looks for
                failures.append(repr(exc))
            searches += 1

    searcher = asyncio.create_task(keep_searching())
    try:
        async with open_resources(sync_settings) as res:
            result = await reindex(res.pool, res.indexing, alias, batch_size=25)
    finally:
        done.set()
        await searcher
    assert result is not None
    assert result.indexed >= len(catalog)
    assert failures == []
    assert searches > 10
    assert await alias_target(search, alias) == result.collection != before
    collections = {c["name"] for c in await search.collections.retrieve()}
    assert before not in collections


async def test_two_relays_publish_each_change_once(pool, catalog, sync_settings):
    ids = [str(i) for i in catalog[10:40]]
    watermark = await pool.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
    async with tap(sync_settings) as queue, running(sync_settings, relays=2, consumer=False):
        for event_id in catalog[10:40]:
            await rename(pool, event_id, new_name())
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM outbox WHERE id > $1 AND published_at IS NULL", watermark
            ),
            lambda left: left == 0,
            5,
            "every change to be published",
        )
        # Rows are marked published only after the broker confirmed them, so everything
        # either relay published for them is in the tap queue by now.
        published = [m.headers[OUTBOX_ID_HEADER] for m in await drain(queue)]
    expected = [
        row["id"]
        for row in await pool.fetch(
            "SELECT id FROM outbox WHERE id > $1 AND aggregate_id = ANY($2) ORDER BY id",
            watermark,
            ids,
        )
    ]
    assert len(expected) == len(ids)
    assert sorted(i for i in published if i in set(expected)) == expected


async def test_changes_survive_postgres_going_away_during_consumption(sync_settings, search):
    # A database of this test's own, so refusing its connections disturbs nothing else.
    url = f"{PG_BASE}/tk_test_{RUN_ID}_pgdown"
    name_of_db = url.rsplit("/", 1)[1]
    await asyncio.to_thread(migrate.create_database, url)
    await asyncio.to_thread(migrate.upgrade, url)
    settings = settings_with(
        sync_settings,
        database_url=url,
        typesense_collection=sync_settings.typesense_collection + "_pgdown",
    )
    admin = await asyncpg.connect(f"{PG_BASE}/postgres")
    own_pool = await asyncpg.create_pool(url, min_size=0, max_size=2)
    try:
        async with own_pool.acquire() as conn:
            [event_id] = await insert_events(conn, ["Outage Night"], "Berlin")
        async with open_resources(settings) as res:
            await reindex(res.pool, res.indexing, settings.typesense_collection)
        name = new_name()
        async with running(settings, consumer=False):
            await rename(own_pool, event_id, name)
            await eventually(
                lambda: own_pool.fetchval(
                    "SELECT bool_and(published_at IS NOT NULL) FROM outbox WHERE aggregate_id = $1",
                    str(event_id),
                ),
                lambda published: published,
                5,
                "the change to reach the queue",
            )
        await own_pool.expire_connections()
        # Postgres goes away: new connections are refused, existing ones are cut.
        await admin.execute(f'ALTER DATABASE "{name_of_db}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            name_of_db,
        )
        failures_before = metric("ticketing_search_sync_failures_total", dependency="postgres")
        async with running(settings, relays=0):
            await eventually(
                lambda: asyncio.sleep(
                    0, metric("ticketing_search_sync_failures_total", dependency="postgres")
                ),
                lambda failures: failures > failures_before,
                10,
                "the consumer to fail a batch on Postgres",
            )
            assert await indexed_name(search, settings.typesense_collection, event_id) != name
            await admin.execute(f'ALTER DATABASE "{name_of_db}" WITH ALLOW_CONNECTIONS true')
            # The requeued message is applied once Postgres is back: nothing was lost.
            await wait_indexed(search, settings.typesense_collection, event_id, name, 15)
    finally:
        await admin.execute(f'ALTER DATABASE "{name_of_db}" WITH ALLOW_CONNECTIONS true')
        await own_pool.close()
        await admin.close()
        await drop_alias(settings)
        await asyncio.to_thread(migrate.drop_database, url)


async def test_changes_committed_during_a_reindex_are_replayed_into_the_new_collection(
    pool, catalog, sync_settings, search, monkeypatch
):
    # Nothing relays or consumes here: only the reindex's own replay can carry the change.
    import search_sync.reindex as reindex_module

    alias = sync_settings.typesense_collection
    name = new_name()
    fill = reindex_module._fill

    async def fill_then_edit(*args, **kwargs):
        indexed = await fill(*args, **kwargs)  # the new collection holds the old name now
        await rename(pool, catalog[11], name)
        return indexed

    monkeypatch.setattr(reindex_module, "_fill", fill_then_edit)
    async with open_resources(sync_settings) as res:
        result = await reindex(res.pool, res.indexing, alias)
    assert result is not None
    assert result.replayed >= 1
    assert await alias_target(search, alias) == result.collection
    assert await indexed_name(search, alias, catalog[11]) == name

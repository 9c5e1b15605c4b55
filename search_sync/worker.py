"""The search_sync process: outbox relay, consumer and bootstrap reindex, with a lifecycle.

Stopping (SIGTERM/SIGINT or ``stop.set()``) stops taking new work; the consumer finishes the
batch in hand and the relay the rows it claimed, then every connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import typesense
from prometheus_client import start_http_server

from search_sync.consumer import SearchSyncConsumer
from search_sync.indexer import indexing_client
from search_sync.reindex import ReindexResult, reindex
from search_sync.relay import OutboxRelay
from ticketing.config import Settings
from ticketing.dependencies import POSTGRES_ERRORS, TYPESENSE_ERRORS, DependencyDown
from ticketing.lifecycle import Backoff, wait_any
from ticketing.redis_connect import RedisClient, connect_redis
from ticketing.search_index import make_client
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS, create_pg_pool

log = logging.getLogger(__name__)

BOOTSTRAP_DEADLINE_SECONDS = 120.0
# What makes the bootstrap reindex try again (until its deadline) rather than fail.
_RETRIED: tuple[type[BaseException], ...] = (*POSTGRES_ERRORS, *TYPESENSE_ERRORS, DependencyDown)


class BootstrapFailed(RuntimeError):
    """Typesense or Postgres did not come up in time to build the first index."""


@dataclass(frozen=True, slots=True)
class Resources:
    pool: asyncpg.Pool
    redis: RedisClient
    search: typesense.AsyncClient  # short timeouts, for per-batch upserts
    indexing: typesense.AsyncClient  # long timeouts, for bulk imports


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    pool = await create_pg_pool(settings)
    redis = connect_redis(settings.redis_url, timeout=DEPENDENCY_TIMEOUT_SECONDS)
    resources = Resources(pool, redis, make_client(settings), indexing_client(settings))
    try:
        yield resources
    finally:
        await resources.search.api_call.aclose()
        await resources.indexing.api_call.aclose()
        await redis.aclose()
        await pool.close()


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    serve_metrics: bool = True,
    bootstrap_deadline: float = BOOTSTRAP_DEADLINE_SECONDS,
) -> None:
    metrics_server = None
    if serve_metrics:
        port = settings.search_sync_metrics_port
        metrics_server, _ = start_http_server(port, settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, port)
    try:
        async with open_resources(settings) as res:
            consumer = SearchSyncConsumer(
                settings, pool=res.pool, redis=res.redis, typesense_client=res.search
            )
            tasks = [
                asyncio.create_task(OutboxRelay(settings).run(stop), name="relay"),
                asyncio.create_task(consumer.run(stop), name="consumer"),
                asyncio.create_task(
                    bootstrap(settings, res, stop, bootstrap_deadline), name="bootstrap"
                ),
            ]
            try:
                # The first task to fail stops the others: a half-working process is worse
                # than one its supervisor restarts.
                for finished in asyncio.as_completed(tasks):
                    await finished
            except BaseException:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()


async def bootstrap(
    settings: Settings, res: Resources, stop: asyncio.Event, deadline_seconds: float
) -> None:
    """Build the index if the alias does not exist yet (first start, or a fresh Typesense)."""
    deadline = time.monotonic() + deadline_seconds
    backoff = Backoff(first=0.5, most=5.0)
    await _wait_for_typesense(settings, res.indexing, stop, deadline)
    while not stop.is_set():
        try:
            result = await reindex(
                res.pool, res.indexing, settings.typesense_collection, only_if_missing=True
            )
        except _RETRIED as exc:
            if time.monotonic() > deadline:
                raise BootstrapFailed(f"bootstrap reindex kept failing: {exc}") from exc
            log.warning("bootstrap: reindex failed, retrying: %s", exc)
            await backoff.sleep(stop)
            continue
        if result is None:
            log.info("bootstrap: alias %s exists, nothing to build", settings.typesense_collection)
        else:
            log.info(
                "bootstrap: built %s with %d events in %.1fs",
                result.collection,
                result.indexed,
                result.seconds,
            )
        return


async def _wait_for_typesense(
    settings: Settings, client: typesense.AsyncClient, stop: asyncio.Event, deadline: float
) -> None:
    logged = False
    while not stop.is_set():
        try:
            if await client.operations.is_healthy():
                log.info("bootstrap: Typesense at %s is up", settings.typesense_url)
                return
        except TYPESENSE_ERRORS:
            pass
        if time.monotonic() > deadline:
            raise BootstrapFailed(f"Typesense at {settings.typesense_url} did not come up")
        if not logged:
            log.info("bootstrap: waiting for Typesense at %s", settings.typesense_url)
            logged = True
        await wait_any(stop, seconds=0.5)


async def run_reindex(settings: Settings) -> ReindexResult:
    async with open_resources(settings) as res:
        result = await reindex(res.pool, res.indexing, settings.typesense_collection)
    if result is None:  # only a bootstrap (only_if_missing) reindex returns None
        raise RuntimeError("reindex returned no result")
    return result

"""Where a catalog read goes: a streaming replica within the lag bound, else the primary;
and read-your-writes for the admin who just wrote.

After an admin's catalog write commits, the primary's WAL position is remembered in Redis
under that admin (``<prefix>pg:written:<user>``, for ``marker_seconds``). While it is
there, that admin's reads skip the view cache (which a replica may have filled with the
older view) and go to a replica whose last sample had replayed that position, else to
the primary. Everyone else reads from any usable replica. A read a replica cannot answer
(down, or a query cancelled by replay) is asked of the primary instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import asyncpg
from aiohttp import web
from prometheus_client import Counter

from catalog_api.dependencies import (
    PG_UNAVAILABLE,
    REDIS_UNAVAILABLE,
    count_dependency_error,
    postgres,
)
from catalog_api.keys import REPLICAS_KEY
from catalog_api.replicas import PRIMARY_LSN_SQL, ReplicaSet
from ticketing.auth import optional_principal
from ticketing.config import Settings
from ticketing.metrics import SERVICE_KEY
from ticketing.problems import Problem
from ticketing.web import HEALTH_CHECKS_KEY, PG_POOL_KEY, REDIS_KEY, SETTINGS_KEY, EngineState

log = logging.getLogger(__name__)

T = TypeVar("T")

PG_READS = Counter(
    "ticketing_pg_reads_total",
    "Catalog reads answered by PostgreSQL, by where they went: replica, primary, or "
    "promoted (a listed node out of recovery, while no replica is usable: a failover).",
    ["service", "target"],
)

# A replica that cannot answer: unreachable, or a query cancelled by a conflict with the
# WAL it replays (SQLSTATE 40001).
REPLICA_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *PG_UNAVAILABLE,
    asyncpg.TransactionRollbackError,
)
# An admin's write whose position is unknown: their reads go to the primary.
UNKNOWN_LSN = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """``min_lsn``: a position the replica must have replayed (an admin's own write);
    ``use_cache``: whether the view cache may answer."""

    min_lsn: int | None = None
    use_cache: bool = True


ANYONE = ReadPlan()


def marker_seconds(settings: Settings) -> float:
    """How long an admin's reads look for their own write: past the lag bound, and past
    the life of a view a replica cached before replaying it (the bound again)."""
    return max(10.0, 4 * settings.pg_replica_max_lag_seconds)


def view_ttl(settings: Settings, from_replica: bool) -> int:
    """A view read from a replica may miss a change whose invalidation came first: it is
    cached only for the lag bound, so it is never more than twice the bound old."""
    if from_replica:
        return max(1, math.ceil(settings.pg_replica_max_lag_seconds))
    return settings.cache_ttl_seconds


def _written_key(settings: Settings, user_id: str) -> str:
    return f"{settings.redis_prefix}pg:written:{user_id}"


async def read_plan(request: web.Request) -> ReadPlan:
    app = request.app
    if app.get(REPLICAS_KEY) is None:
        return ANYONE
    try:
        principal = optional_principal(request)
    except Problem:  # a bad token on a public read: read as anyone
        return ANYONE
    if principal is None or not principal.is_admin:
        return ANYONE
    settings = app[SETTINGS_KEY]
    try:
        raw = await app[REDIS_KEY].get(_written_key(settings, principal.user_id))
    except REDIS_UNAVAILABLE:
        count_dependency_error(app, "redis")
        return ReadPlan(min_lsn=UNKNOWN_LSN, use_cache=False)
    if raw is None:
        return ANYONE
    return ReadPlan(min_lsn=int(raw), use_cache=False)


async def remember_write(request: web.Request, conn: asyncpg.Connection) -> None:
    """Call on the primary's connection after an admin's write committed."""
    app = request.app
    if app.get(REPLICAS_KEY) is None:
        return
    principal = optional_principal(request)
    if principal is None:
        return
    try:
        lsn = await conn.fetchval(PRIMARY_LSN_SQL)
    except PG_UNAVAILABLE:  # committed, position unknown: read from the primary
        lsn = UNKNOWN_LSN
        # Broken mid-query: the pool must not reset it (that fails), but drop it.
        conn.terminate()
    settings = app[SETTINGS_KEY]
    try:
        await app[REDIS_KEY].set(
            _written_key(settings, principal.user_id),
            str(lsn),
            px=int(marker_seconds(settings) * 1000),
        )
    except REDIS_UNAVAILABLE as exc:
        # Their reads are then as fresh as the lag bound, like everyone's.
        log.warning("read-your-writes marker not stored: %s", type(exc).__name__)
        count_dependency_error(app, "redis")


async def read_postgres(
    app: web.Application, plan: ReadPlan, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> tuple[T, bool]:
    """``work``'s result on a replica the plan allows, else on the primary (whose
    failure is :class:`DependencyDown`), and whether a replica answered."""
    replicas = app.get(REPLICAS_KEY)
    replica = None if replicas is None else replicas.choose(plan.min_lsn)
    if replicas is not None and replica is not None:
        try:
            async with replica.pool.acquire() as conn:
                result = await work(cast("asyncpg.Connection", conn))
        except REPLICA_UNAVAILABLE as exc:
            log.warning("replica %s unavailable: %s", replica.name, type(exc).__name__)
            replicas.failed(replica)
            count_dependency_error(app, "postgres_replica")
        else:
            target = "replica" if replica.sample.in_recovery else "promoted"
            PG_READS.labels(app[SERVICE_KEY], target).inc()
            return result, True
    async with postgres(app) as conn:
        result = await work(conn)
    PG_READS.labels(app[SERVICE_KEY], "primary").inc()
    return result, False


async def replicas_ctx(app: web.Application) -> AsyncIterator[None]:
    """The replica set, when replicas are configured, and its health check."""
    settings = app[SETTINGS_KEY]
    if not settings.database_replica_urls.split():
        yield
        return
    replicas = ReplicaSet(settings, app[PG_POOL_KEY], app[SERVICE_KEY])
    await replicas.open(settings.db_pool_max)
    app[REPLICAS_KEY] = replicas
    app[HEALTH_CHECKS_KEY]["postgres"] = check_postgres
    yield
    await replicas.close()


async def check_postgres(app: web.Application) -> EngineState:
    """Mode ``replicas``: down only when neither the primary nor any replica answers."""
    try:
        async with asyncio.timeout(1.5):
            async with app[PG_POOL_KEY].acquire() as conn:
                await conn.fetchval("SELECT 1")
    except Exception:  # the primary is down: its replicas may still serve reads
        primary_up = False
    else:
        primary_up = True
    return app[REPLICAS_KEY].engine_state(primary_up)

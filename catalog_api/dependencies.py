"""Access to Postgres and Typesense behind circuit breakers, with failures counted.

Handlers never see driver exceptions: an outage becomes :class:`DependencyDown`, which the
caller turns into a fallback or a ``503 backend_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar, cast

import asyncpg
from aiohttp import web

from catalog_api.breaker import DependencyDown
from catalog_api.keys import PG_BREAKER_KEY, TYPESENSE_BREAKER_KEY
from catalog_api.typesense_reader import DocumentNotFound, TypesenseUnavailable
from ticketing.dependencies import REDIS_ERRORS
from ticketing.metrics import DEGRADED_RESPONSES, DEPENDENCY_ERRORS, SERVICE_KEY, route_label
from ticketing.problems import Problem
from ticketing.web import PG_POOL_KEY

log = logging.getLogger(__name__)

T = TypeVar("T")

# What "Postgres is unreachable" looks like: refused or timed-out connects, a database that
# refuses connections, backends terminated under us, a closed pool.
PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.TooManyConnectionsError,
    # During a failover: no node takes writes yet (target_session_attrs=read-write: an
    # InternalClientError), a connection left mid-operation by a node that died under it
    # (one too), or a pooled connection to the old primary, now a standby.
    asyncpg.InternalClientError,
    asyncpg.ReadOnlySQLTransactionError,
)
TYPESENSE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    TypesenseUnavailable,
    OSError,
    asyncio.TimeoutError,
)
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (*REDIS_ERRORS, asyncio.TimeoutError)


def count_dependency_error(app: web.Application, dependency: str) -> None:
    DEPENDENCY_ERRORS.labels(app[SERVICE_KEY], dependency).inc()


def count_degraded(request: web.Request, fallback: str) -> None:
    DEGRADED_RESPONSES.labels(request.app[SERVICE_KEY], route_label(request), fallback).inc()


def backend_unavailable(what: str) -> Problem:
    return Problem(
        503,
        "backend_unavailable",
        f"{what} is temporarily unavailable; please retry shortly.",
        headers={"Retry-After": "2"},
    )


@asynccontextmanager
async def postgres(app: web.Application) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; any connectivity failure (also mid-query) is DependencyDown."""
    breaker = app[PG_BREAKER_KEY]
    breaker.check()
    try:
        async with app[PG_POOL_KEY].acquire() as conn:
            # The pool's proxy forwards every Connection method to the connection it holds.
            yield cast("asyncpg.Connection", conn)
    except PG_UNAVAILABLE as exc:
        log.warning("postgres unavailable: %s", type(exc).__name__)
        if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
            # Its connections are to a node no longer primary: connect again, to the one
            # that is (the URL's target_session_attrs=read-write chooses it).
            await app[PG_POOL_KEY].expire_connections()
        breaker.record_failure()
        count_dependency_error(app, "postgres")
        raise DependencyDown("postgres") from exc
    breaker.record_success()


async def call_typesense(
    app: web.Application, call: Callable[[], Awaitable[T]], *, not_found_ok: bool = False
) -> T:
    """Run one Typesense call; DocumentNotFound passes through when ``not_found_ok``."""
    breaker = app[TYPESENSE_BREAKER_KEY]
    breaker.check()
    try:
        result = await call()
    except DocumentNotFound:
        if not_found_ok:
            breaker.record_success()
            raise
        breaker.record_failure()
        count_dependency_error(app, "typesense")
        raise DependencyDown("typesense") from None
    except TYPESENSE_UNAVAILABLE as exc:
        log.warning("typesense unavailable: %s: %s", type(exc).__name__, exc)
        breaker.record_failure()
        count_dependency_error(app, "typesense")
        raise DependencyDown("typesense") from exc
    breaker.record_success()
    return result

"""Which exceptions mean "a dependency is down" (retry later), per dependency.

Everything else is a bug and is allowed to surface.
"""

from __future__ import annotations

import asyncio

import aiormq.exceptions
import asyncpg
import httpx
import redis.exceptions
from typesense.exceptions import TypesenseClientError

# RabbitMQ first: aiormq's connection errors are also OSErrors.
RABBITMQ_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)
POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A failover URL (target_session_attrs=read-write) while no node takes writes yet,
    # or a connection left mid-operation by a node that died under it.
    asyncpg.InternalClientError,
)
TYPESENSE_ERRORS: tuple[type[BaseException], ...] = (TypesenseClientError, httpx.HTTPError)
# A Redis Cluster's own ways of saying "unreachable" (not RedisErrors): no node answers,
# or a slot no node serves (a shard lost with no replica to take over). Its other
# exceptions (a command across slots, say) are bugs.
REDIS_CLUSTER_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisClusterUnreachableError,
    redis.exceptions.SlotNotCoveredError,
)
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    OSError,
    *REDIS_CLUSTER_DOWN,
)


class DependencyDown(Exception):
    """Postgres, Typesense, Redis or RabbitMQ failed; retry the work later, never drop it."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        super().__init__(f"{dependency} unavailable: {type(cause).__name__}: {cause}")
        self.dependency = dependency


def dependency_of(exc: BaseException) -> str | None:
    """The dependency an exception from the relay or consumer loop points at, if any."""
    if isinstance(exc, DependencyDown):
        return exc.dependency
    if isinstance(exc, RABBITMQ_ERRORS):
        return "rabbitmq"
    if isinstance(exc, POSTGRES_ERRORS):
        return "postgres"
    return None

"""Applying a batch of commands in ONE Postgres transaction, each in its own savepoint.

A refused or failing command rolls back only its savepoint; its reply (and every other
command's) is stored in ``processed_commands`` in the same transaction, so after a crash
either all of a batch's effects and replies exist or none do, and a redelivered command
finds its reply instead of acting twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from booking_worker.context import Connection, Context, Handler, PaymentHandler
from booking_worker.handlers import READ_ONLY
from booking_worker.metrics import REPLAYED
from booking_worker.reserve import reserve_group
from ticketing.domain.booking import is_id
from ticketing.messages import Command, Reserve
from ticketing.problems import Problem

log = logging.getLogger(__name__)

# Lost a race with another transaction: retry the batch, one command per transaction.
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)
# Answers that say "not yet" rather than how a command ended: never stored, so a retry of
# the same request finds out the outcome instead of hearing "not yet" forever.
TRANSIENT_CODES = frozenset({"payment_in_progress"})
# The database or the connection is gone: requeue, never answer. A restart says so in
# its own words: the server shutting down (57P01, 57P02) or starting up (57P03, refused
# until recovery ends), and a connection it dropped mid-operation (InternalClientError).
# Answered as errors instead, a confirm whose charge had gone through was dead-lettered
# with its payment left 'pending' (bench/chaos.py, PostgreSQL restart).
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,
)


@dataclass(slots=True)
class Outcome:
    status: int
    body: dict[str, Any] | None
    replayed: bool = False
    failed: str | None = None  # a bug: answered 500 and dead-lettered with this reason


async def apply_batch(
    ctx: Context,
    conn: Connection,
    handlers: dict[str, Handler],
    commands: list[Command],
) -> list[Outcome]:
    """Every command of the batch, committed together. Stored replies of the whole batch
    are looked up in one round trip (a request_id repeated inside the batch is caught by
    the unique key when its second copy stores, and answered with the first's reply)."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT request_id, reply FROM processed_commands WHERE request_id = ANY($1)",
            [c.request_id for c in commands if c.kind not in READ_ONLY],
        )
        known = {row["request_id"]: _replayed(row["reply"]) for row in rows}
        results = await _reserve_groups(ctx, conn, commands, known)
        for i, command in enumerate(commands):
            if results[i] is None:
                results[i] = await apply_one(ctx, conn, handlers, command, known)
        return [outcome for outcome in results if outcome is not None]


async def _reserve_groups(
    ctx: Context, conn: Connection, commands: list[Command], known: dict[str, Outcome]
) -> list[Outcome | None]:
    """Outcomes of the batch's fresh reserves, decided per event in a few statements
    (booking_worker.reserve); None where the command still has to run on its own (not a
    reserve, a stored reply to answer, a second copy in the batch, or its group undone)."""
    results: list[Outcome | None] = [None] * len(commands)
    groups: dict[int | None, list[tuple[int, Reserve]]] = defaultdict(list)
    seen = set(known)
    for i, command in enumerate(commands):
        if isinstance(command, Reserve) and command.request_id not in seen:
            seen.add(command.request_id)  # a second copy in the batch replays the first
            groups[command.event_id if is_id(command.event_id) else None].append((i, command))
    for event_id, group in groups.items():
        indexes = [i for i, _ in group]
        try:
            async with conn.transaction():
                replies = await reserve_group(ctx, conn, event_id, [c for _, c in group])
        except (*RETRYABLE, *CONNECTION_ERRORS):
            raise
        except Exception as exc:  # a conflict, a concurrent retry, or a bug: go one by one
            log.warning("reserve group of %d for event %s undone: %r", len(indexes), event_id, exc)
            continue
        for i, (status, body) in zip(indexes, replies, strict=True):
            results[i] = Outcome(status, body)
    return results


async def _reserve_alone(ctx: Context, conn: Connection, command: Reserve) -> Outcome:
    """A reserve as a group of one, which stores its own reply."""
    event_id = command.event_id if is_id(command.event_id) else None
    ((status, body),) = await reserve_group(ctx, conn, event_id, [command])
    return Outcome(status, body)


async def apply_one(
    ctx: Context,
    conn: Connection,
    handlers: dict[str, Handler],
    command: Command,
    known: dict[str, Outcome] | None = None,
) -> Outcome:
    """One command in a savepoint; ``known`` holds stored replies already looked up."""
    kind, request_id = command.kind, command.request_id
    store = kind not in READ_ONLY
    stored = await _earlier_reply(conn, command, known) if store else None
    if stored is not None:
        return stored
    try:
        async with conn.transaction():  # a savepoint inside the batch
            if isinstance(command, Reserve):
                return await _reserve_alone(ctx, conn, command)
            status, body = await handlers[kind](ctx, conn, command)
            if store and _storable(status, body):
                await _store(conn, command, status, body)
        return Outcome(status, body)
    except Problem as problem:
        outcome = Outcome(problem.status, problem.to_dict())
    except asyncpg.UniqueViolationError as exc:
        # The same request_id was committed by another worker meanwhile (a client retry
        # racing its original): answer what that one answered.
        stored = await _stored_reply(conn, request_id) if store else None
        if stored is not None:
            return stored
        return _failed(command, exc)
    except (*RETRYABLE, *CONNECTION_ERRORS):
        raise
    except Exception as exc:  # a bug in a handler: never guess, park the command
        return _failed(command, exc)
    if store and _storable(outcome.status, outcome.body):
        return await _store_refusal(conn, command, outcome)
    return outcome


async def _earlier_reply(
    conn: Connection, command: Command, known: dict[str, Outcome] | None
) -> Outcome | None:
    """The stored reply of an earlier copy of the command, from ``known`` when the batch
    looked them up already."""
    if known is not None:
        return known.get(command.request_id)
    return await _stored_reply(conn, command.request_id)


async def _store_refusal(conn: Connection, command: Command, outcome: Outcome) -> Outcome:
    """Store a refusal whose savepoint rolled back, in one of its own; if another copy of
    the command stored its reply meanwhile, that one is the answer."""
    try:
        async with conn.transaction():
            await _store(conn, command, outcome.status, outcome.body)
    except asyncpg.UniqueViolationError:
        stored = await _stored_reply(conn, command.request_id)
        if stored is not None:
            return stored
        raise
    return outcome


async def apply_unshared(
    ctx: Context, pool: asyncpg.Pool, handler: PaymentHandler, command: Command
) -> Outcome:
    """A payment command, outside any transaction of ours: its handler commits its own short
    writes around the call to Stripe. Its stored reply is looked up before and its reply
    stored after, each on a connection taken for that moment only, so nothing is held
    while Stripe thinks. Copies of one command that race (a retry and its original) are
    kept apart by the handler (booking_worker.attempt_locks); the first reply stored wins."""
    request_id = command.request_id
    async with pool.acquire() as conn:
        stored = await _stored_reply(conn, request_id)
    if stored is not None:
        return stored
    try:
        status, body = await handler(ctx, command)
    except Problem as problem:
        status, body = problem.status, problem.to_dict()
    except (*RETRYABLE, *CONNECTION_ERRORS):
        raise
    except Exception as exc:  # a bug in a handler: never guess, park the command
        return _failed(command, exc)
    if _storable(status, body):
        async with pool.acquire() as conn:
            try:
                await _store(conn, command, status, body)
            except asyncpg.UniqueViolationError:
                stored = await _stored_reply(conn, request_id)
                if stored is not None:
                    return stored
                raise
    return Outcome(status, body)


def _storable(status: int, body: dict[str, Any] | None) -> bool:
    return status < 500 and (body or {}).get("code") not in TRANSIENT_CODES


def _failed(command: Command, exc: BaseException) -> Outcome:
    log.exception(
        "booking command %s request_id=%s failed",
        command.kind,
        command.request_id,
        exc_info=exc,
    )
    problem = Problem(500, "internal_error", "Something went wrong on our side; it was logged.")
    return Outcome(500, problem.to_dict(), failed=f"{type(exc).__name__}: {exc}")


async def _stored_reply(conn: Connection, request_id: str) -> Outcome | None:
    raw = await conn.fetchval(
        "SELECT reply FROM processed_commands WHERE request_id = $1", request_id
    )
    return None if raw is None else _replayed(raw)


def _replayed(raw: str) -> Outcome:
    REPLAYED.inc()
    reply = orjson.loads(raw)
    return Outcome(reply["status"], reply["body"], replayed=True)


async def _store(conn: Connection, command: Command, status: int, body: Any) -> None:
    await conn.execute(
        "INSERT INTO processed_commands (request_id, type, reply) VALUES ($1, $2, $3::jsonb)",
        command.request_id,
        command.kind,
        orjson.dumps({"status": status, "body": body}).decode(),
    )

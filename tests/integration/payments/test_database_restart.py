"""A PostgreSQL restart while a payment settles (bench/chaos.py caught it): the errors a
restarting server raises are "the database is gone, requeue", never a handler's bug that
answers 500 and parks the command, which left a charged card with no booking."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from booking_worker.commands import apply_unshared
from ticketing.messages import Confirm

RESTART_ERRORS = [
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.InternalClientError("cannot perform operation: another operation is in progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
]


def _command() -> Confirm:
    return Confirm(
        request_id=uuid.uuid4().hex,
        user_id="restart",
        hold_id=str(uuid.uuid4()),
        payment_method="pm",
    )


@pytest.mark.parametrize("error", RESTART_ERRORS, ids=lambda e: type(e).__name__)
async def test_a_restart_during_a_payment_requeues_it(pool: asyncpg.Pool, error) -> None:
    async def settle_fails(ctx, command):
        raise error

    with pytest.raises(type(error)):  # up to the payments stage, which requeues it
        await apply_unshared(None, pool, settle_fails, _command())  # type: ignore[arg-type]


async def test_control_a_handlers_own_error_is_answered_and_parked(pool: asyncpg.Pool) -> None:
    async def buggy(ctx, command):
        raise ValueError("a bug")

    outcome = await apply_unshared(None, pool, buggy, _command())  # type: ignore[arg-type]
    assert outcome.status == 500 and outcome.failed

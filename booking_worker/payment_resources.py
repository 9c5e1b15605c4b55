"""What a process needs to take payments, made once: the Stripe client, the pool of short
connections a confirm's writes use around the call to Stripe, and the attempt locks."""

from __future__ import annotations

import asyncio

import asyncpg

from booking_worker.attempt_locks import AttemptLocks
from booking_worker.context import Context
from ticketing.payments import Payments


async def payment_resources(ctx: Context) -> tuple[asyncpg.Pool, Payments]:
    """The process's Stripe client, the pool its two-phase writes use and its attempt
    locks, made once."""
    if "payments" in ctx.resources:  # twice per payment: no lock to take once made
        return ctx.resources["payments.pool"], ctx.resources["payments"]
    lock = ctx.resources.setdefault("payments.lock", asyncio.Lock())
    async with lock:
        if "payments" not in ctx.resources:
            ctx.resources["payments.pool"] = await asyncpg.create_pool(
                ctx.settings.database_url,
                min_size=1,
                # Each payment in flight uses a connection only for its short writes before
                # and after Stripe's answer, so a few serve dozens of payments.
                max_size=8,
                # Fail fast rather than wait on a lock a batch transaction holds.
                server_settings={"lock_timeout": "2000"},
                reset=_reset_payment_connection,
            )
            ctx.resources["payments.locks"] = AttemptLocks(ctx.settings.database_url)
            ctx.resources["payments"] = Payments(ctx.settings)
    return ctx.resources["payments.pool"], ctx.resources["payments"]


# Server pids of pooled connections that may hold a refund's session advisory lock
# (complete_due_refunds), from just before it is asked for until it is let go.
may_hold_session_locks: set[int] = set()


async def _reset_payment_connection(conn: asyncpg.Connection) -> None:
    """The payments pool's reset on release, in place of asyncpg's default: that one sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` every time, a round trip
    for each of a confirm's several short uses of the pool, to undo what no user of this
    pool leaves behind. asyncpg rolls back a transaction left open before it calls this.
    Nothing else on these connections outlives a transaction: nothing LISTENs on them
    (pg_notify from the outbox trigger only sends), nothing SETs (lock_timeout is a startup
    setting, which RESET ALL would keep anyway), cursors live only inside transactions, and
    the only session advisory locks are refunds' (attempt locks have a connection of their
    own, booking_worker.attempt_locks), which mark their connection here until released,
    so an interrupted refund's lock is let go before the connection serves anyone else."""
    pid = conn.get_server_pid()
    if pid in may_hold_session_locks:
        await conn.execute("SELECT pg_advisory_unlock_all()")
        may_hold_session_locks.discard(pid)


async def close_payment_resources(ctx: Context) -> None:
    if "payments" in ctx.resources:
        await ctx.resources.pop("payments").close()
        await ctx.resources.pop("payments.locks").close()
        await ctx.resources.pop("payments.pool").close()

"""Pruning ``processed_commands``: a stored reply answers retries for a retention, then goes.

Every booking command's reply is stored (booking_worker.commands) so that a redelivered
message, or a fan's retry with the same Idempotency-Key, is answered instead of applied
twice. Past TICKETING_IDEMPOTENCY_RETENTION_HOURS no retry is expected, and keeping the
replies would grow the table by every command ever sent. A pruned key is forgotten: the
same request sent again is a new request. So the request id a hold was made under
(``holds.request_id``, unique) is cleared with its reply, in the same statement; else the
new request would collide with the old hold and fail instead of being applied.

Rows go oldest first through the ``created_at`` index, in small batches, each its own short
transaction, so the table the reserve path inserts into is never locked for long; rows
another worker's sweeper is deleting are skipped, so sweepers never wait on each other.
A Stripe event's stored reply goes too: its ``stripe_webhook_events`` row, which is kept,
still deduplicates Stripe's redeliveries (those go on for days).
"""

from __future__ import annotations

import logging

import asyncpg

from booking_worker.metrics import PRUNED

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
# A backlog (the first prune of a large table) is worked off over several runs rather than
# in one: the sweeper that runs this also releases expired holds, which must not wait.
MAX_BATCHES_PER_RUN = 10


async def prune_processed_commands(
    pool: asyncpg.Pool,
    retention_seconds: float,
    batch: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES_PER_RUN,
) -> int:
    """Delete stored replies older than ``retention_seconds``, at most ``batch`` rows a
    statement and ``max_batches`` statements a call; returns how many went."""
    pruned = 0
    for _ in range(max_batches):
        deleted = await pool.fetchval(
            """WITH due AS (
                   SELECT request_id FROM processed_commands
                   WHERE created_at < now() - make_interval(secs => $1)
                   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
               ), pruned AS (
                   DELETE FROM processed_commands p USING due
                   WHERE p.request_id = due.request_id
                   RETURNING p.request_id
               ), forgotten AS (
                   UPDATE holds SET request_id = NULL
                   WHERE request_id IN (SELECT request_id FROM pruned)
               )
               SELECT count(*) FROM pruned""",
            float(retention_seconds),
            batch,
        )
        pruned += deleted
        if deleted < batch:
            break
    if pruned:
        PRUNED.inc(pruned)
        log.info("pruned stored command replies rows=%d retention_s=%d", pruned, retention_seconds)
    return pruned

"""A replica's lag is sampled, exported, and bounds its use: while its replay is paused and
the primary writes, its lag grows in the catalog's metrics, and once past
TICKETING_PG_REPLICA_MAX_LAG_SECONDS the catalog's reads leave it for the primary."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.integration.replicas.conftest import Pair
from tests.integration.replicas.support import (
    catalog,
    caught_up,
    pause_replay,
    replica_metrics,
    resume_replay,
    seed_event,
)
from tests.integration.replicas.test_read_routing import first_seat, health, hold_first_seat
from tests.support import eventually, settings_with
from ticketing.config import Settings

BOUND = 1.0


async def test_lag_rises_while_replay_is_paused_and_reads_leave_the_replica(
    pair: Pair, replica_settings: Settings
) -> None:
    settings = settings_with(replica_settings, pg_replica_max_lag_seconds=BOUND)
    client = await catalog(settings)
    try:
        event = await seed_event(client, settings, "Lagging Replica Night")
        await caught_up(pair.primary, pair.replica)
        await eventually(
            lambda: replica_metrics(client, pair.replica),
            lambda m: m == {"lag_seconds": 0.0, "lag_bytes": 0.0, "usable": 1.0},
            5,
            "no lag",
        )
        writer = await asyncpg.connect(pair.primary.url())
        await pause_replay(pair.replica)
        paused_at = time.monotonic()
        try:
            await hold_first_seat(writer, event["id"])
            over = await eventually(
                lambda: replica_metrics(client, pair.replica),
                lambda m: m["lag_seconds"] > BOUND and m["usable"] == 0,
                10,
                "the lag past the bound",
            )
            await asyncio.sleep(1.0)
            later = await replica_metrics(client, pair.replica)
            # Growing while paused: the bytes the primary wrote, and the time since the
            # last commit the replica replayed.
            assert over["lag_bytes"] > 0
            assert later["lag_seconds"] >= over["lag_seconds"] + 0.5
            assert later["lag_bytes"] >= over["lag_bytes"]
            # Past the bound, reads are the primary's: the seat held since is seen.
            assert await first_seat(client, event["id"]) == "reserved"
            components = await health(client)
            assert components["postgres"]["healthy"] == 1  # the primary; not the replica
            print(
                f"\nlag while paused: {over['lag_seconds']:.2f} s / {over['lag_bytes']:.0f} B"
                f" seen {time.monotonic() - paused_at:.2f} s after the pause;"
                f" 1 s later {later['lag_seconds']:.2f} s / {later['lag_bytes']:.0f} B"
            )
        finally:
            await resume_replay(pair.replica)
            await writer.close()
        resumed_at = time.monotonic()
        await eventually(
            lambda: replica_metrics(client, pair.replica),
            lambda m: m == {"lag_seconds": 0.0, "lag_bytes": 0.0, "usable": 1.0},
            10,
            "the lag gone after the replay resumed",
        )
        print(f"lag back to 0 and the replica in use {time.monotonic() - resumed_at:.2f} s later")
    finally:
        await client.close()

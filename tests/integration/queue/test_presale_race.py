"""A presale's share of the seats holds across booking workers: 300 fans race through the
HTTP API, with three real worker processes, for an event of 4,000 seats whose presale may
sell 30; the workers never hold more than 30 together. The control runs workers that count
the share without its lock (this module, run as a worker: ``python -m
tests.integration.queue.test_presale_race``) and shows the same test catches workers that
overshoot it together."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter

import asyncpg
import pytest

from tests.integration.booking.support import (
    WorkerProcesses,
    call,
    fan,
    make_event,
    open_client,
    wait_for_consumers,
)
from tests.support import settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section

UNLOCKED_WORKER = "tests.integration.queue.test_presale_race"
FANS = 300
WORKERS = 3
SHARE = 30


async def race(
    settings: Settings, pool: asyncpg.Pool, amqp_url: str, group: list, module: str
) -> tuple[Counter, int]:
    """(statuses and refusal codes, seats held) after the race."""
    race_settings = settings_with(settings, amqp_url=amqp_url, booking_rpc_timeout_seconds=60)
    # No waiting room: the reserves go straight to the workers, whose share is the test.
    # Seats enough that each worker's window of free seats is its own (a window covering
    # every seat would make the workers wait on each other's seats, share or no share).
    event = await make_event(pool, [Section("Floor", 40, 100, 5000)])
    await pool.execute(
        """INSERT INTO presales (event_id, registration_opens_at, registration_closes_at,
             general_sale_at, codes, seats, seed, updated_by)
           VALUES ($1, now() - interval '2 hours', now() - interval '1 hour',
                   now() + interval '1 hour', 1, $2, repeat('0', 64), 'test')""",
        event,
        SHARE,
    )
    workers = WorkerProcesses(race_settings, module)
    group.append(workers)
    workers.start(WORKERS)
    await wait_for_consumers(amqp_url, WORKERS)
    rng = random.Random(11)
    # A front door per worker: each sends its fans' reserves as batches of its own, so the
    # workers decide at the same moments (one front door's batch goes to one worker).
    clients = [await open_client(race_settings) for _ in range(WORKERS)]
    try:

        async def one(i: int) -> str:
            body = {"event_id": event, "quantity": rng.randint(1, 3)}
            status, reply, _ = await call(
                clients[i % WORKERS],
                "POST",
                "/booking/reserve",
                fan(race_settings, f"fan-{i}"),
                body,
            )
            return str(status) if status == 201 else f"{status} {reply.get('code')}"

        results = Counter(await asyncio.gather(*(one(i) for i in range(FANS))))
    finally:
        for client in clients:
            await client.close()
        workers.stop()
    held = await pool.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status <> 'available'", event
    )
    print(f"\n{module}: {held} seats held of a share of {SHARE}; {dict(results)}")
    return results, held


@pytest.mark.slow
async def test_the_share_holds_across_workers(
    booking_settings, pool, isolated_amqp, worker_processes
) -> None:
    results, held = await race(
        booking_settings, pool, isolated_amqp, worker_processes, "booking_worker"
    )
    # tickets_unavailable: the seats another worker was taking at that moment (skipped).
    assert set(results) <= {"201", "409 presale_sold_out", "409 tickets_unavailable"}, results
    assert SHARE - 2 <= held <= SHARE, (held, results)  # at most 2 left to a 3-seat ask


@pytest.mark.slow
async def test_control_without_the_lock_the_workers_overshoot(
    booking_settings, pool, isolated_amqp, worker_processes
) -> None:
    results, held = await race(
        booking_settings, pool, isolated_amqp, worker_processes, UNLOCKED_WORKER
    )
    assert held > SHARE, (held, results)  # what the real test asserts fails here


async def _unlocked_share(conn, event_id: int, seats: int | None) -> int | None:
    """booking_worker.reserve._presale_share without its lock, and a moment between the
    count and the write, in which the other workers' batches count too."""
    if seats is None:
        return None
    taken = await conn.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status <> 'available'", event_id
    )
    await asyncio.sleep(0.2)
    return max(0, seats - taken)


if __name__ == "__main__":
    import booking_worker.reserve
    from booking_worker.__main__ import main

    booking_worker.reserve._presale_share = _unlocked_share  # type: ignore[assignment]
    sys.exit(main())

"""Partition ownership: a worker with slot i/n is first in line for its partitions (so one
hot event's commands batch together in one worker), and the others take over when it is
gone, so no partition waits on a dead worker."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from booking_worker.worker import BookingWorker, consumer_priorities
from tests.integration.booking.support import (
    call,
    fan,
    make_event,
    open_client,
    wait_for_consumers,
)
from tests.support import settings_with
from ticketing.config import ConfigError, Settings
from ticketing.domain.seating import Section
from ticketing.messages import booking_routing_key


def test_consumer_priorities() -> None:
    assert consumer_priorities("", 4) == [0, 0, 0, 0]
    assert consumer_priorities("1/3", 8) == [0, 10, 0, 0, 10, 0, 0, 10]
    assert consumer_priorities("0/1", 3) == [10, 10, 10]
    for bad in ("3/3", "a/2", "1", "-1/2"):
        with pytest.raises(ConfigError):
            Settings.from_env({"TICKETING_BOOKING_WORKER_SLOT": bad})


class Counting(BookingWorker):
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        super().__init__(settings, pool)
        self.messages = 0

    async def process(self, batch, *args) -> None:
        self.messages += len(batch)
        await super().process(batch, *args)


async def test_the_owner_takes_its_partition_and_the_others_step_in_when_it_goes(
    booking_settings, isolated_amqp, pool
) -> None:
    settings = settings_with(booking_settings, amqp_url=isolated_amqp)
    event = await make_event(pool, [Section("Floor", 10, 10, 5000)])
    partition = int(booking_routing_key(event, settings.booking_partitions))
    owner = Counting(settings_with(settings, booking_worker_slot=f"{partition % 2}/2"), pool)
    other = Counting(settings_with(settings, booking_worker_slot=f"{1 - partition % 2}/2"), pool)
    stops = [asyncio.Event(), asyncio.Event()]
    runs = [asyncio.create_task(w.run(s)) for w, s in zip((owner, other), stops, strict=True)]
    client = await open_client(settings)
    try:
        # Both consuming (each worker consumes every partition, its own ones first).
        await wait_for_consumers(isolated_amqp, 2, partitions=(partition,))
        answers = await asyncio.gather(
            *(
                call(
                    client,
                    "POST",
                    "/booking/reserve",
                    fan(settings, f"slot-{i}"),
                    {
                        "event_id": event,
                        "quantity": 1,
                    },
                )
                for i in range(30)
            )
        )
        assert [status for status, _, _ in answers] == [201] * 30
        assert owner.messages > 0 and other.messages == 0
        stops[0].set()
        await asyncio.wait_for(runs[0], 20)
        status, _, _ = await call(
            client,
            "POST",
            "/booking/reserve",
            fan(settings, "after"),
            {
                "event_id": event,
                "quantity": 1,
            },
        )
        assert status == 201
        assert other.messages > 0
    finally:
        await client.close()
        for stop in stops:
            stop.set()
        await asyncio.gather(*runs, return_exceptions=True)

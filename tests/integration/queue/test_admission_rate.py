"""The admission rate: the set rate, measured over 20 s; the waits told in an on-sale's
first seconds, from the set rate; and auto mode, which backs off while the booking queues
back up and admits no faster than the seats left can be sold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aio_pika
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    ROOMY,
    get_queue,
    in_snapshot,
    join_many,
    patch_queue,
    queue_event,
    queue_status,
)
from tests.support import auth_header, eventually, settings_with
from ticketing.config import Settings
from ticketing.domain.seating import Section
from ticketing.messages import BOOKING_EXCHANGE


async def line_admitted_at(
    client: TestClient,
    settings: Settings,
    pool: asyncpg.Pool,
    prefix: str,
    fans: int,
    per_minute: int,
) -> tuple[int, Callable[[], Awaitable[int]]]:
    """A roomy event's line of ``fans`` (``<prefix>-<n>``, in that order), admitted from
    now at ``per_minute``; and how many it has admitted so far."""
    event = await queue_event(pool, ROOMY)
    await in_snapshot(client, settings, event)
    await patch_queue(client, settings, event, paused=True, max_active=10_000)
    await join_many(client, settings, event, [f"{prefix}-{i}" for i in range(fans)])
    await patch_queue(client, settings, event, paused=False, admit_per_minute=per_minute)

    async def admitted() -> int:
        return (await get_queue(client, settings, event))["admitted_total"]

    return event, admitted


async def test_admission_runs_at_the_set_rate(qclient, queue_settings, pool) -> None:
    """600 a minute, measured over 20 s (a third of a minute at ten times the default
    rate): 200 admissions expected, within 10%. Seats enough that they are no limit."""
    event, admitted = await line_admitted_at(qclient, queue_settings, pool, "rate", 280, 600)
    start_count = await eventually(admitted, lambda n: n >= 5, 5, "admission to start")
    started = time.monotonic()
    await asyncio.sleep(20)  # the measurement window, not a wait for something to happen
    count = await admitted()
    elapsed = time.monotonic() - started
    rate = (count - start_count) * 60 / elapsed
    assert 540 <= rate <= 660, rate
    figures = await get_queue(qclient, queue_settings, event)
    assert 540 <= figures["measured_admit_per_minute"] <= 660, figures
    # the wait a fan is told comes from that measured rate
    _, last = await queue_status(qclient, queue_settings, "rate-279", event)
    expected = last["position"] * 60 / figures["measured_admit_per_minute"]
    assert last["eta_seconds"] == pytest.approx(expected, rel=0.15, abs=2)


async def test_the_first_estimates_of_an_on_sale_come_from_the_set_rate(
    qclient, queue_settings, pool
) -> None:
    """In the first seconds of admission nothing much has been measured: the waits told
    then are the line's length at the set rate, not five times that (a second of
    admissions read as five seconds' worth, as the measured rate alone would have it)."""
    event, admitted = await line_admitted_at(qclient, queue_settings, pool, "early", 200, 600)
    await eventually(admitted, lambda n: n >= 1, 5, "admission to start")
    _, last = await queue_status(qclient, queue_settings, "early-199", event)
    figures = await get_queue(qclient, queue_settings, event)
    assert last["status"] == "waiting"
    assert last["eta_seconds"] == pytest.approx(last["position"] * 60 / 600, rel=0.1, abs=1)
    # the control: what the admissions so far measure would have said
    measured = figures["measured_admit_per_minute"]
    assert measured < 300, figures
    assert last["position"] * 60 / measured > 2 * last["eta_seconds"]


async def test_auto_mode_backs_off_when_the_booking_queues_back_up(
    queue_settings, pool, isolated_amqp
) -> None:
    # A vhost where no booking worker consumes, so commands published there wait.
    settings = settings_with(queue_settings, amqp_url=isolated_amqp)
    big = [Section("Field", 10, 100, 3000)]  # 1,000 seats: the inventory is no limit here
    event = await queue_event(pool, big)
    client = await open_client(settings)
    try:
        await in_snapshot(client, settings, event)
        figures = await patch_queue(client, settings, event, mode="auto", admit_per_minute=600)
        assert figures["effective_admit_per_minute"] == 150  # a quarter, then it climbs

        async def effective() -> float:
            return (await get_queue(client, settings, event))["effective_admit_per_minute"]

        await eventually(effective, lambda r: r == 600, 15, "the climb to the ceiling")
        connection = await aio_pika.connect(isolated_amqp)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(BOOKING_EXCHANGE)
            for _ in range(settings.queue_auto_max_backlog + 50):
                await exchange.publish(aio_pika.Message(b"{}"), routing_key="0")
            await eventually(effective, lambda r: r <= 150, 8, "the rate to halve twice")
            _, listing, _ = await call(
                client, "GET", "/admin/queues", auth_header(settings, "ops", ["admin"])
            )
            assert listing["booking_health"]["backlog"] > settings.queue_auto_max_backlog
            queue = await channel.declare_queue("booking.commands.0", passive=True)
            await queue.purge()
            await eventually(effective, lambda r: r >= 300, 10, "the climb back")
        finally:
            await connection.close()
        # few seats left: auto mode admits no faster than they can be sold
        few = await queue_event(pool, [Section("Box", 1, 3, 10000)])
        await in_snapshot(client, settings, few)
        await patch_queue(client, settings, few, mode="auto", admit_per_minute=600)

        async def few_rate() -> float:
            return (await get_queue(client, settings, few))["effective_admit_per_minute"]

        await eventually(few_rate, lambda r: r == 18, 5, "3 spare seats x 6 a minute")
    finally:
        await client.close()

"""Booking worker processes that run one stage each (TICKETING_BOOKING_STAGES, or
``python -m booking_worker --stages``), as make run starts them: real processes, the
waitingroom app in front, a real localstripe behind.

A commands-only worker never takes a message from ``booking.payments`` (a confirm waits
there until a payments worker comes, and is then booked by it); a payments-only worker takes
no partition; and with payments in their own process, reserves keep their latency while
dozens of confirms wait on a slow provider."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from tests.integration.booking.support import (
    WorkerProcesses,
    make_event,
    open_client,
    ticket_ids,
    wait_for_consumers,
)
from tests.integration.payments.localstripe import Emulator, LocalStripe
from tests.integration.payments.steps import PRICE, a_fan, confirm, reserve
from tests.integration.payments.support import WEBHOOK_SECRET, charging, scrape
from tests.support import eventually, free_port, settings_with, wait_until
from ticketing.config import Settings
from ticketing.domain.seating import Section
from ticketing.messages import BOOKING_PAYMENTS_QUEUE, BOOKING_QUEUE_PREFIX

PROMPTLY = 1.0  # a reserve with nothing in its way, with room for a busy machine
# The slow provider's answer time; the workers wait up to 0.75 x their RPC timeout for it.
PROVIDER_SECONDS = 2.5
WORKER_RPC_TIMEOUT = "10"


def start_stage(group: WorkerProcesses, stages: str, log: Path, *, flag: bool = False) -> int:
    """One ``python -m booking_worker`` of ``group`` running ``stages``, named by the
    environment or (``flag``) on the command line; returns its metrics port."""
    port = free_port()
    env = {**group.env, "TICKETING_BOOKING_WORKER_METRICS_PORT": str(port)}
    argv = [sys.executable, "-m", "booking_worker"]
    if flag:
        argv += ["--stages", stages]
    else:
        env["TICKETING_BOOKING_STAGES"] = stages
    with log.open("wb") as out:
        group.procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=out))
    wait_until(lambda: _metrics_up(port), 30, f"the {stages} worker's metrics")
    return port


def _metrics_up(port: int) -> bool:
    try:
        scrape(port)
    except (urllib.error.URLError, OSError):
        return False
    return True


async def queue_state(amqp_url: str, name: str) -> tuple[int, int]:
    """(messages ready, consumers) of a declared queue."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(name, passive=True)
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await connection.close()


def stage_settings(booking_settings: Settings, amqp: str, stripe_url: str) -> Settings:
    return settings_with(
        booking_settings,
        amqp_url=amqp,
        stripe_api_base=stripe_url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        booking_rpc_timeout_seconds=20.0,
    )


def workers(settings: Settings) -> WorkerProcesses:
    return WorkerProcesses(
        settings,
        TICKETING_STRIPE_API_BASE=settings.stripe_api_base,
        TICKETING_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TICKETING_BOOKING_RPC_TIMEOUT_SECONDS=WORKER_RPC_TIMEOUT,
    )


async def test_a_commands_worker_never_takes_a_payment_a_payments_worker_books_it(
    booking_settings: Settings,
    pool: asyncpg.Pool,
    localstripe: LocalStripe,
    isolated_amqp: str,
    worker_processes: list[WorkerProcesses],
    tmp_path: Path,
) -> None:
    settings = stage_settings(booking_settings, isolated_amqp, localstripe.url)
    group = workers(settings)
    worker_processes.append(group)
    commands_port = start_stage(group, "commands", tmp_path / "commands.log")
    await wait_for_consumers(isolated_amqp, 1)
    partition = BOOKING_QUEUE_PREFIX + "0"
    api = await open_client(settings)
    try:
        event_id = await make_event(pool, [Section("Stalls", 1, 4, PRICE)])
        _, me = a_fan(settings)
        hold = await reserve(api, me, event_id, (await ticket_ids(pool, event_id))[:2])
        pending = asyncio.create_task(confirm(api, me, hold["hold_id"]))
        # Published, and left alone: the only worker runs the partitions, not payments.
        await eventually(
            lambda: queue_state(isolated_amqp, BOOKING_PAYMENTS_QUEUE),
            lambda state: state == (1, 0),
            10,
            "the confirm to wait in booking.payments",
        )
        # The scenario, not a wait: two seconds in which no worker may take it.
        await asyncio.sleep(2.0)
        assert await queue_state(isolated_amqp, BOOKING_PAYMENTS_QUEUE) == (1, 0)
        assert not pending.done()
        assert (
            await pool.fetchval("SELECT count(*) FROM payments WHERE hold_id = $1", hold["hold_id"])
            == 0
        )

        # Control: a payments-only worker (the stage named on its command line) takes the
        # same waiting message and books it; it takes no partition.
        payments_log = tmp_path / "payments.log"
        payments_port = start_stage(group, "payments", payments_log, flag=True)
        status, booking, *_ = await asyncio.wait_for(pending, 30)
        assert status == 201, booking
        assert booking["status"] == "confirmed" and booking["hold_id"] == hold["hold_id"]
        assert await queue_state(isolated_amqp, BOOKING_PAYMENTS_QUEUE) == (0, 1)
        assert (await queue_state(isolated_amqp, partition))[1] == 1
    finally:
        await api.close()
    commands, payments = scrape(commands_port), scrape(payments_port)
    assert commands['booking_worker_stage{stage="commands"}'] == 1
    assert 'booking_worker_stage{stage="payments"}' not in commands
    assert payments['booking_worker_stage{stage="payments"}'] == 1
    assert 'booking_worker_stage{stage="commands"}' not in payments
    assert not any(name.startswith("booking_confirm_outcomes_total") for name in commands)
    assert payments['booking_confirm_outcomes_total{outcome="confirmed"}'] == 1
    assert "stages: payments" in payments_log.read_text()


def test_an_unknown_stage_stops_the_worker_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "booking_worker", "--stages", "payment"],
        # The test keys, not prod, whatever the shell says: the stage is what is refused.
        env={**os.environ, "TICKETING_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "--stages must name commands, payments or both" in result.stderr


class SlowStripe(Emulator):
    def answers(self) -> bool:
        """Up, by a path outside /v1/: the simulated latency delays only the API's."""
        try:
            urllib.request.urlopen(self.url + "/_up", timeout=0.5)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True


@pytest.fixture
def slow_stripe(tmp_path: Path) -> Iterator[Emulator]:
    """localstripe as make run starts it, answering each call after PROVIDER_SECONDS
    (+-20%), several calls side by side."""
    stripe = SlowStripe(
        tmp_path / "stripe" / "state.pickle",
        tmp_path,
        latency_ms=int(PROVIDER_SECONDS * 1000),
        from_scratch=True,
    )
    stripe.start()
    try:
        yield stripe
    finally:
        stripe.stop()


async def test_reserves_keep_their_latency_while_confirms_wait_on_a_slow_provider(
    booking_settings: Settings,
    pool: asyncpg.Pool,
    slow_stripe: Emulator,
    isolated_amqp: str,
    worker_processes: list[WorkerProcesses],
    tmp_path: Path,
) -> None:
    confirms, reserves = 48, 5
    settings = stage_settings(booking_settings, isolated_amqp, slow_stripe.url)
    group = workers(settings)
    worker_processes.append(group)
    commands_port = start_stage(group, "commands", tmp_path / "commands.log")
    payments_port = start_stage(group, "payments", tmp_path / "payments.log")
    await wait_for_consumers(isolated_amqp, 1)
    api = await open_client(settings)
    try:
        event_id = await make_event(pool, [Section("Stalls", 1, confirms + reserves, PRICE)])
        seats = await ticket_ids(pool, event_id)
        held = []
        for seat in seats[:confirms]:
            _, fan = a_fan(settings)
            held.append((fan, await reserve(api, fan, event_id, [seat])))
        started = time.monotonic()
        paying = [asyncio.create_task(confirm(api, fan, hold["hold_id"])) for fan, hold in held]
        await charging(pool, [hold["hold_id"] for _, hold in held])
        took = []
        for seat in seats[confirms:]:
            _, fan = a_fan(settings)
            at = time.monotonic()
            hold = await reserve(api, fan, event_id, [seat])
            took.append(time.monotonic() - at)
            assert hold["status"] == "held"
        # The race is real: no confirm had its answer while the reserves were made.
        assert not any(task.done() for task in paying), "the provider answered: no overlap"
        assert max(took) < PROMPTLY, took
        replies = await asyncio.gather(*paying)
        paid_in = time.monotonic() - started
    finally:
        await api.close()
    assert [reply.status for reply in replies] == [201] * confirms, replies
    # Side by side with the provider, not one after another.
    assert paid_in < 3 * PROVIDER_SECONDS, f"{confirms} confirms took {paid_in:.1f}s"
    commands, payments = scrape(commands_port), scrape(payments_port)
    assert payments['booking_confirm_outcomes_total{outcome="confirmed"}'] == confirms
    assert not any(name.startswith("booking_confirm_outcomes_total") for name in commands)
    assert commands['booking_command_outcomes_total{command="booking.reserve",outcome="ok"}'] == (
        confirms + reserves
    )

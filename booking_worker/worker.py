"""The booking worker process: consume command batches, apply them, reply after commit.

Order per batch: one transaction (commands in savepoints, replies stored) -> commit ->
publish replies -> ack. A crash before the commit redelivers the whole batch, which then
runs for the first time; a crash after it redelivers commands whose stored replies are
answered again. Nothing is lost and nothing is applied twice.

A process runs the stages TICKETING_BOOKING_STAGES names: ``commands`` (the partition
queues, above) and ``payments`` (booking_worker.payment_stage), both by default. Payments
cost a worker's event loop far more than reserves do (the Stripe SDK, the confirm's round
trips), so a deployment may give them a process of their own and keep the partition
workers' loops for reserves; at least one process must then run payments, or confirms and
Stripe events wait in their queue and owed refunds are not made.

Stopping (SIGTERM/SIGINT or ``stop.set()``) stops taking messages, finishes the batch in
hand, hands prefetched messages back to the queue and closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from booking_worker.commands import CONNECTION_ERRORS, RETRYABLE, Outcome, apply_batch, apply_one
from booking_worker.confirm import (
    close_payment_resources,
    complete_due_refunds,
    payment_resources,
)
from booking_worker.context import Connection
from booking_worker.delivery import (
    Delivery,
    commands_in,
    dead_letter_command,
    dead_letter_message,
    observe,
    refuse_undecodable,
    reply,
)
from booking_worker.handlers import Context, Handler, build_handlers
from booking_worker.holds import expire_holds
from booking_worker.metrics import BATCH_SIZE, QUEUE_DEPTH, STAGES
from booking_worker.payment_stage import PaymentStage
from booking_worker.pruning import prune_processed_commands
from ticketing.booking_topology import BookingTopology, declare_topology
from ticketing.config import BOOKING_STAGES, Settings
from ticketing.consumer_runtime import ConsumerConfig, Link, run_consumer
from ticketing.lifecycle import Backoff, requeue_after_backoff, wait_any
from ticketing.messages import CONFIRM, STRIPE_EVENT, Command, MessageError

log = logging.getLogger(__name__)

Message = AbstractIncomingMessage
# After the first message of a batch, how long to wait for more to join it.
BATCH_WAIT_SECONDS = 0.002
DEPTH_SAMPLE_SECONDS = 5.0
# Payment commands come through the payments stage (booking_worker.payment_stage); one that
# reaches a partition queue (sent there by a front door older than that stage) is applied
# here, alone, after the batch.
UNBATCHED = frozenset({CONFIRM, STRIPE_EVENT})
PREFERRED = 10  # consumer priority on the partitions of this worker's slot
COMMANDS, PAYMENTS = BOOKING_STAGES


class BookingWorker:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.ctx = Context(settings)
        self.handlers: dict[str, Handler] = build_handlers()
        self.backoff = Backoff()
        self.payments = PaymentStage(settings, self.ctx)
        self.stages = settings.booking_stage_names

    async def run(self, stop: asyncio.Event) -> None:
        for stage in self.stages:
            STAGES.labels(stage).set(1)
        sweeper = asyncio.create_task(self.sweep(stop))
        try:
            await self._keep_consuming(stop)
        finally:
            stop.set()
            await sweeper
            await self.payments.drain()
            await close_payment_resources(self.ctx)

    async def _keep_consuming(self, stop: asyncio.Event) -> None:
        config = ConsumerConfig(
            what="booking worker",
            service="booking_worker",
            prefetch=2 * self.settings.booking_batch_max,
            batch_max=self.settings.booking_batch_max,
            batch_wait_seconds=BATCH_WAIT_SECONDS,
            size=commands_in,
        )
        await run_consumer(
            self.settings.amqp_url, config, lambda link: self._attach(link, stop), stop
        )

    async def _attach(self, link: Link, stop: asyncio.Event) -> _Attached:
        topology = await declare_topology(
            link.channel, self.settings.booking_partitions, self.settings.amqp_queue_type
        )
        if COMMANDS in self.stages:
            priorities = consumer_priorities(
                self.settings.booking_worker_slot, len(topology.partitions)
            )
            for queue, priority in zip(topology.partitions, priorities, strict=True):
                await link.consume(queue, {"x-priority": priority})
        # Payments on a channel of their own: its prefetch bounds the Stripe calls in
        # flight, and none of them waits behind (or holds up) the partitions' batches.
        payments = None
        if PAYMENTS in self.stages:
            payments = await self.payments.start(link.connection, stop)
        sampler = asyncio.create_task(self._sample_depth(topology, stop, link.lost))
        log.info(
            "booking worker stages %s: consuming %d partition queues%s",
            ",".join(self.stages),
            link.consuming,
            f" and {topology.payments.name}" if payments else "",
        )
        return _Attached(self, link.channel, topology.dead_exchange, payments, sampler)

    async def process(
        self,
        batch: list[Message],
        channel: AbstractChannel,
        dead_exchange: AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        """Apply every command of these messages (a message holds one command or a batch
        of them), then per message: reply, dead-letter what failed, ack."""
        units: list[Delivery] = []
        for message in batch:
            try:
                units.append(Delivery.decode(message, self.settings.command_secret))
            except MessageError as exc:
                await refuse_undecodable(channel, dead_exchange, message, exc)
        commands = [command for unit in units for command in unit.commands]
        if not commands:
            return
        try:
            outcomes = await self._apply(commands)
        except CONNECTION_ERRORS as exc:
            log.warning(
                "booking batch of %d: postgres unavailable, requeueing: %s", len(commands), exc
            )
            await requeue_after_backoff(self.backoff, stop, [unit.message for unit in units])
            return
        self.backoff.reset()
        BATCH_SIZE.observe(len(commands))
        now = time.time()
        done = iter(outcomes)
        for unit in units:
            await self._answer(unit, done, channel, dead_exchange, now)

    async def _answer(
        self,
        unit: Delivery,
        done: Iterator[Outcome | None],
        channel: AbstractChannel,
        dead_exchange: AbstractExchange,
        now: float,
    ) -> None:
        """Reply to one message and dead-letter what failed in it, then settle it: ack,
        requeue (a command lost a race) or park (a single command that failed)."""
        replies: list[tuple[Any, int, Any]] = list(unit.refused)
        retry = False
        parked: str | None = None
        for command in unit.commands:
            outcome = next(done)
            if outcome is None:  # lost a race again: the message comes round again
                retry = True
                continue
            replies.append((command.correlation_id, outcome.status, outcome.body))
            observe(command, outcome, now)
            if outcome.failed and unit.batched:
                await dead_letter_command(dead_exchange, unit.message, command, outcome.failed)
            elif outcome.failed:
                parked = outcome.failed
        for raw, reason in unit.malformed:
            await dead_letter_command(dead_exchange, unit.message, raw, reason, "bad_message")
        await reply(channel, unit.message, replies, batched=unit.batched)
        if parked:  # the whole (single-command) message, as it came; acked
            await dead_letter_message(dead_exchange, unit.message, parked, "handler_error")
        elif retry:
            # The rest of the message is answered from stored replies when it returns;
            # its callers ignore a second answer.
            await unit.message.nack(requeue=True)
        else:
            await unit.message.ack()

    async def _apply(self, commands: list[Command]) -> list[Outcome | None]:
        # Payment commands call Stripe: never inside a transaction other commands share,
        # or their seat locks would be held for the length of a card payment.
        shared = [i for i, c in enumerate(commands) if c.kind not in UNBATCHED]
        results: list[Outcome | None] = [None] * len(commands)
        async with self.pool.acquire() as conn:
            for i, outcome in zip(
                shared,
                await self._apply_together(conn, [commands[i] for i in shared]),
                strict=True,
            ):
                results[i] = outcome
            for i, command in enumerate(commands):
                if command.kind in UNBATCHED:
                    results[i] = await self._apply_alone(conn, command)
        return results

    async def _apply_together(
        self, conn: Connection, commands: list[Command]
    ) -> list[Outcome | None]:
        if not commands:
            return []
        try:
            return list(await apply_batch(self.ctx, conn, self.handlers, commands))
        except RETRYABLE as exc:
            if len(commands) == 1:
                log.info("booking command lost a race, requeued: %s", exc)
                return [None]
            log.info("booking batch of %d lost a race, applying one by one", len(commands))
        return [await self._apply_alone(conn, command) for command in commands]

    async def _apply_alone(self, conn: Connection, command: Command) -> Outcome | None:
        try:
            async with conn.transaction():
                return await apply_one(self.ctx, conn, self.handlers, command)
        except RETRYABLE:
            return None

    async def sweep(self, stop: asyncio.Event) -> None:
        """Expire due holds every sweep_interval_seconds; workers share it via SKIP LOCKED."""
        retention = self.settings.idempotency_retention_hours * 3600
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await expire_holds(conn, limit=1000)
                # Stored replies past the retention; before refunds, which a Stripe outage fails.
                await prune_processed_commands(self.pool, retention)
                # Late payments whose seats were gone are owed back; refund them here, in
                # the processes that call Stripe anyway.
                if PAYMENTS in self.stages:
                    await complete_due_refunds(*await payment_resources(self.ctx))
            except Exception as exc:  # the sweeper must outlive a database or Stripe outage
                log.warning("hold sweeper failed, retrying: %s", exc)
            await wait_any(stop, seconds=self.settings.sweep_interval_seconds)

    async def _sample_depth(
        self, topology: BookingTopology, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        with contextlib.suppress(Exception):
            while not stop.is_set() and not lost.is_set():
                queues = list(topology.partitions) if COMMANDS in self.stages else []
                if PAYMENTS in self.stages:
                    queues = [*queues, topology.payments]
                for queue in queues:
                    declared = await queue.declare()
                    QUEUE_DEPTH.labels(queue.name).set(declared.message_count or 0)
                await wait_any(stop, lost, seconds=DEPTH_SAMPLE_SECONDS)


class _PaymentConsumer(Protocol):
    async def stop_taking(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Attached:
    """The worker on one RabbitMQ connection (ticketing.consumer_runtime)."""

    worker: BookingWorker
    channel: AbstractChannel
    dead_exchange: AbstractExchange
    payments: _PaymentConsumer | None
    sampler: asyncio.Task[None]

    async def process(self, batch: list[Message], stop: asyncio.Event) -> None:
        await self.worker.process(batch, self.channel, self.dead_exchange, stop)

    async def detach(self) -> None:
        self.sampler.cancel()
        if self.payments is not None:
            await self.payments.stop_taking()


def consumer_priorities(slot: str, partitions: int) -> list[int]:
    """RabbitMQ consumer priority per partition queue. A worker with slot ``i/n`` is first
    in line for the partitions p with p % n == i: the broker gives their messages to it
    while it has room in its prefetch, to the others only when it is full or gone. So one
    hot event's commands meet in one worker's transactions, where they batch best, instead
    of three workers fighting over the same seats with SKIP LOCKED (bench/README.md: 1 worker
    sold 1,054 holds/s where 3 competing sold ~800); and no partition waits on a dead
    worker. Without a slot every worker is equal, as before."""
    if not slot:
        return [0] * partitions
    index, count = (int(part) for part in slot.split("/"))
    return [PREFERRED if p % count == index else 0 for p in range(partitions)]

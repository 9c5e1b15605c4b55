"""The payments stage of a booking worker: confirms and Stripe events, many at once.

A card payment waits on the provider (about 0.3 s at Stripe, seconds when it struggles).
Applied in the partition queues' batch loop, one after another, every reserve and release
of those partitions waited behind each payment: an on-sale sold ten seats a second. So
payment commands travel on their own queue (``booking.payments``, see
ticketing.messages.command_routing_key), and each worker consumes it on a channel of its
own, running each payment as a task of its own:

- at most ``payments_concurrency`` payments are with Stripe at once per worker (the
  channel's prefetch bounds the messages, a semaphore the commands in them);
- a slow or silent Stripe delays only the payments waiting on it; reserves and releases
  never queue behind them;
- each payment's answer is published the moment it is known, not when its batch-mates'
  are;
- a message is acknowledged once every command in it has been answered and its reply
  stored; a worker that dies before that has the message redelivered, and the stored
  replies answer what was done (booking_worker.commands.apply_unshared);
- two payments of one hold, or two copies of one payment, are kept apart in the database
  (the hold's row lock and the attempt locks of booking_worker.attempt_locks), not by the
  order of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from booking_worker.commands import CONNECTION_ERRORS, RETRYABLE, Outcome, apply_unshared
from booking_worker.confirm import payment_resources
from booking_worker.context import Context, PaymentHandler
from booking_worker.delivery import (
    Delivery,
    Message,
    dead_letter_command,
    observe,
    refuse_undecodable,
    reply,
)
from booking_worker.handlers import build_payment_handlers
from ticketing.booking_topology import declare_topology
from ticketing.config import Settings
from ticketing.lifecycle import Backoff, requeue_after_backoff
from ticketing.messages import Command, MessageError
from ticketing.payments import stripe_timeout
from ticketing.problems import Problem

log = logging.getLogger(__name__)

_REQUEUE = "requeue"  # a command that lost a race: its message comes round again
_UNAVAILABLE = "unavailable"  # the database is gone: the message goes back after a backoff


@dataclass(slots=True)
class _Consumer:
    queue: AbstractQueue
    tag: str
    stage: PaymentStage

    async def stop_taking(self) -> None:
        """No new payments; those in hand finish (bounded by Stripe's timeout) while the
        channel is still open to answer and acknowledge them."""
        with contextlib.suppress(Exception):
            await self.queue.cancel(self.tag)
        await self.stage.drain()


class PaymentStage:
    def __init__(self, settings: Settings, ctx: Context) -> None:
        self.settings = settings
        self.ctx = ctx
        self.handlers: dict[str, PaymentHandler] = build_payment_handlers()
        self.backoff = Backoff()
        self._slots = asyncio.Semaphore(settings.payments_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        # Long enough for a payment in hand to end: its look-up and its charge may each
        # take Stripe's whole timeout.
        self._drain_seconds = 2 * stripe_timeout(settings).total + 2  # type: ignore[operator]

    async def start(self, connection: AbstractConnection, stop: asyncio.Event) -> _Consumer:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.settings.payments_concurrency)
        topology = await declare_topology(
            channel, self.settings.booking_partitions, self.settings.amqp_queue_type
        )

        async def take(message: Message) -> None:
            task = asyncio.create_task(self._handle(message, channel, topology.dead_exchange, stop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        tag = await topology.payments.consume(take)
        return _Consumer(topology.payments, tag, self)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait for the payments in hand, then cancel what is left (its message is
        redelivered and answered from what was stored)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(
        self,
        message: Message,
        channel: AbstractChannel,
        dead_exchange: AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        try:
            try:
                unit = Delivery.decode(message, self.settings.command_secret)
            except MessageError as exc:
                await refuse_undecodable(channel, dead_exchange, message, exc)
                return
            if unit.refused:
                await reply(channel, message, unit.refused, batched=True)
            for raw, reason in unit.malformed:
                await dead_letter_command(dead_exchange, message, raw, reason, "bad_message")
            results = await asyncio.gather(*(self._one(channel, message, c) for c in unit.commands))
            if _UNAVAILABLE in results:
                await requeue_after_backoff(self.backoff, stop, [message])
                return
            self.backoff.reset()
            for command, result in zip(unit.commands, results, strict=True):
                if isinstance(result, Outcome) and result.failed:
                    await dead_letter_command(dead_exchange, message, command, result.failed)
            if _REQUEUE in results:
                await message.nack(requeue=True)
            else:
                await message.ack()
        except Exception:  # the channel went away mid-answer: the message is redelivered
            log.exception("payment message %s not settled", message.correlation_id)

    async def _one(
        self, channel: AbstractChannel, message: Message, command: Command
    ) -> Outcome | str:
        handler = self.handlers.get(command.kind)
        if handler is None:  # not a payment: parked, never guessed at
            problem = Problem(400, "validation_error", "Not a payment command.")
            return Outcome(400, problem.to_dict(), failed=f"{command.kind} on payments")
        async with self._slots:
            try:
                pool, _ = await payment_resources(self.ctx)
                outcome = await apply_unshared(self.ctx, pool, handler, command)
            except RETRYABLE as exc:
                log.info("payment command lost a race, requeued: %s", exc)
                return _REQUEUE
            except CONNECTION_ERRORS as exc:
                log.warning("payment command: postgres unavailable, requeueing: %s", exc)
                return _UNAVAILABLE
        observe(command, outcome, time.time())
        # Answered at once: a batch-mate waiting on a slower payment does not hold it up.
        await reply(
            channel,
            message,
            [(command.correlation_id, outcome.status, outcome.body)],
            batched=True,
        )
        return outcome

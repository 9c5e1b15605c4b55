"""Request/reply to the booking workers over RabbitMQ.

One connection per front-door process, kept up by a background loop: while the broker is
down a call fails at once with 503 (no fan waits on a dead socket), and the loop reconnects
with backoff. Replies come back on an exclusive queue of this process; each call waits for
its own correlation id, at most booking_rpc_timeout_seconds. Commands bound for the same
partition share messages when they arrive together (``_send``).

Commands go out on a channel of their own, which a failed publish replaces: when a quorum
queue's leader dies, a channel that published to it during the election never has that
publish confirmed and has every later one refused (RabbitMQ 3.10, measured in
tests/integration/amqp_cluster/test_node_loss.py), while a new channel publishes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from prometheus_client import Histogram

from ticketing.amqp_connect import Address, connect, node_of
from ticketing.booking_topology import declare_topology
from ticketing.config import Settings
from ticketing.lifecycle import Backoff, wait_any
from ticketing.messages import (
    BOOKING_EXCHANGE,
    COMMANDS_HEADER,
    SIGNATURE_HEADER,
    BookingReply,
    Command,
    booking_batch,
    command_routing_key,
    command_signature,
    parse_booking_replies,
)
from ticketing.metrics import DEPENDENCY_ERRORS
from ticketing.problems import backend_unavailable

# The name it logged under before the rooms split: its log lines read as they did.
log = logging.getLogger("waitingroom.rpc")

BATCH_SENT = Histogram(
    "booking_rpc_batch_size",
    "Commands the front door sent to the booking workers in one message.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


def stamped(command: Command, correlation_id: str, sent_at: float) -> dict[str, Any]:
    """The wire dict of ``command`` as it is sent: with the time it left (the worker's
    latency metrics) and the id its caller waits on, last, as they always were."""
    wire = command.to_wire()
    wire["sent_at"] = sent_at
    wire["correlation_id"] = correlation_id
    return wire


class BookingRpc:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None  # publishes the commands
        self._reply_to = ""
        self._pending: dict[str, asyncio.Future[BookingReply]] = {}
        # Per routing key: commands waiting to be published, and the task publishing them.
        self._outgoing: dict[str, list[tuple[dict[str, Any], asyncio.Future[BookingReply]]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._batch_max = settings.booking_batch_max
        self._closing = asyncio.Event()
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected())

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            await self._task

    def connected_node(self) -> Address | None:
        """The node the connection is on while it is open and set up (its /healthz)."""
        connection = self._connection
        if connection is None or connection.is_closed:
            return None
        return node_of(connection)

    async def _keep_connected(self) -> None:
        backoff = Backoff()
        while not self._closing.is_set():
            connection = None
            try:
                connection = await connect(self.settings.amqp_url, timeout=3)
                lost = asyncio.Event()
                connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
                listening = await connection.channel()
                await declare_topology(
                    listening, self.settings.booking_partitions, self.settings.amqp_queue_type
                )
                replies = await listening.declare_queue(exclusive=True, auto_delete=True)
                await replies.consume(self._on_reply, no_ack=True)
                channel = await connection.channel(publisher_confirms=True)
                self._connection, self._reply_to, self._channel = connection, replies.name, channel
                self.connected.set()
                backoff.reset()
                log.info("booking rpc connected, replies on %s", replies.name)
                await wait_any(lost, self._closing, seconds=None)
            except Exception as exc:  # any broker failure: reconnect, calls answer 503 meanwhile
                DEPENDENCY_ERRORS.labels("waitingroom", "rabbitmq").inc()
                log.warning("booking rpc: rabbitmq unavailable: %s", exc)
            finally:
                self._connection = self._channel = None
                self.connected.clear()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(backend_unavailable("The broker went away."))
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
            if not self._closing.is_set():
                await backoff.sleep(self._closing)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        try:
            body = orjson.loads(message.body)
        except ValueError:
            log.warning("booking rpc: unreadable reply dropped")
            return
        for reply in parse_booking_replies(body, message.correlation_id):
            cid = reply.correlation_id  # from the reply: a string, or not ours
            future = self._pending.get(cid) if isinstance(cid, str) else None
            if future is not None and not future.done():  # else its caller gave up waiting
                future.set_result(reply)

    async def call(self, command: Command, partition_key: int | str) -> BookingReply:
        """The worker's answer to ``command``, or a 503 Problem."""
        if self._channel is None:
            raise backend_unavailable("The booking service is not reachable; retry shortly.")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[BookingReply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        wire = stamped(command, correlation_id, time.time())
        key = command_routing_key(command.KIND, partition_key, self.settings.booking_partitions)
        self._outgoing.setdefault(key, []).append((wire, future))
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._send(key))
        try:
            return await asyncio.wait_for(future, self.settings.booking_rpc_timeout_seconds)
        except TimeoutError as exc:
            # The command is durable in its queue and will still be applied; a retry with
            # the same Idempotency-Key then returns its outcome.
            raise backend_unavailable(
                "The booking service did not answer in time; retry with the same "
                "Idempotency-Key to get the outcome."
            ) from exc
        finally:
            self._pending.pop(correlation_id, None)

    async def _send(self, key: str) -> None:
        """Publish what is waiting for partition ``key`` as one message per batch, one
        publish at a time: commands that arrive while a publish awaits its confirm go
        together in the next. A lone command leaves at once; under load batches grow by
        themselves, with no timer adding latency."""
        try:
            while waiting := self._outgoing.get(key):
                batch = waiting[: self._batch_max]
                del waiting[: len(batch)]
                channel = self._channel
                try:
                    await self._publish(channel, key, [command for command, _ in batch])
                except Exception as exc:  # the broker refused, dropped or did not confirm
                    DEPENDENCY_ERRORS.labels("waitingroom", "rabbitmq").inc()
                    log.warning("booking rpc: publish of %d commands failed: %s", len(batch), exc)
                    await self._renew(channel)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(
                                backend_unavailable("The booking service is not reachable.")
                            )
                else:
                    BATCH_SENT.observe(len(batch))
        finally:
            del self._senders[key]
            if not self._outgoing.get(key):
                self._outgoing.pop(key, None)

    async def _renew(self, failed: AbstractChannel | None) -> None:
        """A new publishing channel in place of ``failed`` (unless another sender renewed it
        already); calls answer 503 meanwhile. A connection that cannot open one is broken:
        the connection loop replaces it."""
        connection = self._connection
        if failed is None or self._channel is not failed or connection is None:
            return
        self._channel = None
        try:
            self._channel = await connection.channel(publisher_confirms=True)
        except Exception as exc:
            log.warning("booking rpc: no new channel: %s", exc)
            await connection.close(exc)  # lost: _keep_connected connects again
        else:
            log.info("booking rpc: a new publishing channel after a failed publish")
        with contextlib.suppress(Exception):
            await failed.close()

    async def _publish(
        self, channel: AbstractChannel | None, key: str, commands: list[dict[str, Any]]
    ) -> None:
        if channel is None:
            raise ConnectionError("not connected to RabbitMQ")
        body = orjson.dumps(commands[0] if len(commands) == 1 else booking_batch(commands))
        signature = command_signature(self.settings.command_secret, body)
        exchange = await channel.get_exchange(BOOKING_EXCHANGE, ensure=False)
        await asyncio.wait_for(
            exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    correlation_id=commands[0]["correlation_id"],
                    reply_to=self._reply_to,
                    message_id=commands[0]["request_id"],
                    headers={COMMANDS_HEADER: len(commands), SIGNATURE_HEADER: signature},
                ),
                routing_key=key,
                mandatory=True,
            ),
            self.settings.booking_rpc_timeout_seconds,
        )

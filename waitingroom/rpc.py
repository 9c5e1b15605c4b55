"""Request/reply to the booking workers over RabbitMQ.

One connection per front-door process, kept up by a background loop: while the broker is
down a call fails at once with 503 (no fan waits on a dead socket), and the loop reconnects
with backoff. Replies come back on an exclusive queue of this process; each call waits for
its own correlation id, at most booking_rpc_timeout_seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from ticketing.booking_topology import declare_topology
from ticketing.config import Settings
from ticketing.lifecycle import Backoff, wait_any
from ticketing.messages import BOOKING_EXCHANGE, booking_routing_key
from ticketing.metrics import DEPENDENCY_ERRORS
from ticketing.problems import Problem

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "2"


def backend_unavailable(detail: str) -> Problem:
    return Problem(503, "backend_unavailable", detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


class BookingRpc:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channel: AbstractChannel | None = None
        self._reply_to = ""
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._closing = asyncio.Event()
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected())

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            await self._task

    async def _keep_connected(self) -> None:
        backoff = Backoff()
        while not self._closing.is_set():
            connection = None
            try:
                connection = await aio_pika.connect(self.settings.amqp_url, timeout=3)
                lost = asyncio.Event()
                connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
                channel = await connection.channel(publisher_confirms=True)
                await declare_topology(channel, self.settings.booking_partitions)
                replies = await channel.declare_queue(exclusive=True, auto_delete=True)
                await replies.consume(self._on_reply, no_ack=True)
                self._reply_to, self._channel = replies.name, channel
                self.connected.set()
                backoff.reset()
                log.info("booking rpc connected, replies on %s", replies.name)
                await wait_any(lost, self._closing, seconds=None)
            except Exception as exc:  # any broker failure: reconnect, calls answer 503 meanwhile
                DEPENDENCY_ERRORS.labels("waitingroom", "rabbitmq").inc()
                log.warning("booking rpc: rabbitmq unavailable: %s", exc)
            finally:
                self._channel = None
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
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            return  # its caller gave up waiting
        try:
            future.set_result(json.loads(message.body))
        except ValueError as exc:
            future.set_exception(exc)

    async def call(
        self, command: dict[str, Any], partition_key: int | str
    ) -> tuple[int, dict[str, Any] | None]:
        """The worker's (status, body) for ``command``, or a 503 Problem."""
        channel = self._channel
        if channel is None:
            raise backend_unavailable("The booking service is not reachable; retry shortly.")
        timeout = self.settings.booking_rpc_timeout_seconds
        deadline = time.monotonic() + timeout
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        command = {**command, "sent_at": time.time()}
        try:
            exchange = await channel.get_exchange(BOOKING_EXCHANGE, ensure=False)
            await asyncio.wait_for(
                exchange.publish(
                    aio_pika.Message(
                        json.dumps(command).encode(),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        correlation_id=correlation_id,
                        reply_to=self._reply_to,
                        message_id=command["request_id"],
                    ),
                    routing_key=booking_routing_key(
                        partition_key, self.settings.booking_partitions
                    ),
                    mandatory=True,
                ),
                timeout,
            )
            reply = await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            # The command is durable in its queue and will still be applied; a retry with
            # the same Idempotency-Key then returns its outcome.
            raise backend_unavailable(
                "The booking service did not answer in time; retry with the same "
                "Idempotency-Key to get the outcome."
            ) from exc
        except Problem:
            raise
        except Exception as exc:  # the broker refused or dropped the publish
            DEPENDENCY_ERRORS.labels("waitingroom", "rabbitmq").inc()
            raise backend_unavailable("The booking service is not reachable.") from exc
        finally:
            self._pending.pop(correlation_id, None)
            if future.done() and not future.cancelled():
                # Failed by a lost connection while we were still publishing: this call
                # already answers 503, and asyncio must not report the failure as unseen.
                future.exception()
        return reply["status"], reply.get("body")

"""Parking a message that can never succeed: a copy, with the reason in a header, goes to
the dead-letter exchange, then the original is acknowledged (so it stops coming back)."""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage


async def dead_letter(
    exchange: AbstractExchange, message: AbstractIncomingMessage, reason: str, header: str
) -> None:
    await park(
        exchange,
        message.body,
        reason,
        header,
        routing_key=message.routing_key or "",
        headers=dict(message.headers or {}),
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
    )
    await message.ack()


async def park(
    exchange: AbstractExchange,
    body: bytes,
    reason: str,
    header: str,
    *,
    routing_key: str,
    headers: dict[str, Any] | None = None,
    content_type: str | None = "application/json",
    correlation_id: str | None = None,
    message_id: str | None = None,
) -> None:
    """Publish ``body`` to the dead-letter exchange with why (``header``: ``reason``): the
    whole of a message (``dead_letter``), or one command cut out of a batch message."""
    await exchange.publish(
        aio_pika.Message(
            body,
            headers={**(headers or {}), header: reason[:1000]},
            content_type=content_type,
            correlation_id=correlation_id,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=routing_key,
        mandatory=False,
    )

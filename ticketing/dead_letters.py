"""Parking a message that can never succeed: a copy, with the reason in a header, goes to
the dead-letter exchange, then the original is acknowledged (so it stops coming back)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage


async def dead_letter(
    exchange: AbstractExchange, message: AbstractIncomingMessage, reason: str, header: str
) -> None:
    headers = dict(message.headers or {})
    headers[header] = reason[:1000]
    await exchange.publish(
        aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            message_id=message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=message.routing_key or "",
        mandatory=False,
    )
    await message.ack()

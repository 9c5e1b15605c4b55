"""A booking worker believes what a command says (the fan, their roles, that the queue
admitted them), so it acts only on what a front door signed: a command published straight
to a partition queue, of the right shape but unsigned, signed with another secret (here the
published development one of docker compose), or signed for another body, changes nothing,
gets no answer and is dead-lettered. The control: the same message, signed, is applied."""

from __future__ import annotations

import json
import time
import uuid

import aio_pika

from tests.integration.booking.support import make_event
from tests.support import eventually
from ticketing.booking_topology import ERROR_HEADER
from ticketing.domain.seating import Section
from ticketing.messages import (
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    SIGNATURE_HEADER,
    Reserve,
    booking_routing_key,
    command_signature,
)


def forged(event: int, user: str) -> tuple[str, bytes]:
    correlation_id = uuid.uuid4().hex
    command = Reserve(
        request_id=f"forged-{correlation_id}",
        user_id=user,
        roles=("admin",),
        admitted=True,
        event_id=event,
        quantity=2,
    ).to_wire()
    wire = {**command, "correlation_id": correlation_id, "sent_at": time.time()}
    return correlation_id, json.dumps(wire).encode()


async def test_only_signed_commands_are_applied(booking_settings, worker, pool) -> None:
    event = await make_event(pool, [Section("Floor", 2, 5, 4000)])
    secret = booking_settings.command_secret
    other_body = forged(event, "someone-else")[1]
    attempts = {
        "unsigned": (forged(event, "forger"), None),
        "another secret": (
            (cid_body := forged(event, "forger")),
            command_signature("compose-only-command-secret-change-me", cid_body[1]),
        ),
        "another body": (forged(event, "forger"), command_signature(secret, other_body)),
    }
    connection = await aio_pika.connect(booking_settings.amqp_url)
    try:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        routing_key = booking_routing_key(event, booking_settings.booking_partitions)

        async def publish(correlation_id: str, body: bytes, signature: str | None) -> None:
            headers = {} if signature is None else {SIGNATURE_HEADER: signature}
            await exchange.publish(
                aio_pika.Message(
                    body, correlation_id=correlation_id, reply_to=replies.name, headers=headers
                ),
                routing_key=routing_key,
            )

        for (correlation_id, body), signature in attempts.values():
            await publish(correlation_id, body, signature)

        dead = await channel.declare_queue(BOOKING_DEAD_LETTER_QUEUE, durable=True)
        waiting = {correlation_id for (correlation_id, _), _ in attempts.values()}
        reasons: list[str] = []

        async def parked() -> set[str]:
            message = await dead.get(no_ack=True, fail=False)
            if message is not None and message.correlation_id in waiting:
                waiting.discard(message.correlation_id)
                reasons.append(str(message.headers[ERROR_HEADER]))
            return waiting

        await eventually(parked, lambda left: not left, 15, "every forged message parked")
        assert all("not signed" in reason for reason in reasons), reasons
        assert await pool.fetchval("SELECT count(*) FROM holds WHERE event_id = $1", event) == 0
        assert await replies.get(no_ack=True, fail=False) is None

        # The control: the same shape of message, signed with the front door's secret.
        correlation_id, body = forged(event, "forger")
        await publish(correlation_id, body, command_signature(secret, body))
        reply = await eventually(
            lambda: replies.get(no_ack=True, fail=False), lambda m: m is not None, 15, "a reply"
        )
        assert reply.correlation_id == correlation_id
        assert json.loads(reply.body)["status"] == 201
        holders = await pool.fetch("SELECT user_id FROM holds WHERE event_id = $1", event)
        assert [row["user_id"] for row in holders] == ["forger"]
    finally:
        await connection.close()

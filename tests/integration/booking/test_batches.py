"""Several fans' commands in one AMQP message: the front door gathers them, the worker
answers each on its own, and a malformed one spoils nothing but itself."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aio_pika
import asyncpg
import pytest

from tests.integration.booking.support import call, fan, make_event
from tests.support import eventually
from ticketing.domain.seating import Section
from ticketing.messages import (
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    COMMANDS_HEADER,
    RESERVE,
    SIGNATURE_HEADER,
    Reserve,
    booking_batch,
    booking_routing_key,
    command_signature,
)
from waitingroom.booking.rpc import BATCH_SENT

ARENA = [Section("Floor", 10, 20, 5000)]


@pytest.fixture
async def event(pool: asyncpg.Pool) -> int:
    return await make_event(pool, ARENA)


def _sent() -> tuple[float, float]:
    """(messages, commands) the front door has sent so far, from its batch histogram."""
    samples = {s.name: s.value for s in BATCH_SENT.collect()[0].samples}
    return samples["booking_rpc_batch_size_count"], samples["booking_rpc_batch_size_sum"]


async def test_concurrent_fans_share_messages_and_each_gets_their_own_answer(
    client, booking_settings, event, pool
) -> None:
    messages_before, commands_before = _sent()
    fans = [f"batch-fan-{i}" for i in range(60)]
    answers = await asyncio.gather(
        *(
            call(
                client,
                "POST",
                "/booking/reserve",
                fan(booking_settings, name),
                {"event_id": event, "quantity": 2},
            )
            for name in fans
        )
    )
    messages, commands = _sent()
    assert commands - commands_before == 60
    # Batching really happened: fewer messages than commands.
    assert messages - messages_before < 60, (messages - messages_before, commands - commands_before)
    seats: list[int] = []
    for (status, body, _), name in zip(answers, fans, strict=True):
        assert status == 201, body
        held = await pool.fetchrow(
            "SELECT user_id, ticket_ids FROM holds WHERE id = $1", uuid.UUID(body["hold_id"])
        )
        assert held["user_id"] == name  # each fan got their own answer, not a neighbour's
        assert sorted(held["ticket_ids"]) == sorted(t["id"] for t in body["tickets"])
        seats += held["ticket_ids"]
    assert len(seats) == len(set(seats)) == 120


async def test_a_malformed_command_is_refused_alone(booking_settings, worker, event) -> None:
    connection = await aio_pika.connect(booking_settings.amqp_url)
    try:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        good = [
            {
                **Reserve(
                    request_id=f"batch-good-{i}-{uuid.uuid4()}",
                    user_id=f"raw-fan-{i}",
                    event_id=event,
                    quantity=1,
                    admitted=False,
                ).to_wire(),
                "correlation_id": f"good-{i}",
                "sent_at": time.time(),
            }
            for i in range(2)
        ]
        marker = f"bad-{uuid.uuid4()}"
        bad = {"type": RESERVE, "v": 1, "request_id": "", "correlation_id": marker}
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        body = json.dumps(booking_batch([good[0], bad, good[1]])).encode()
        signature = command_signature(booking_settings.command_secret, body)
        await exchange.publish(
            aio_pika.Message(
                body,
                reply_to=replies.name,
                headers={COMMANDS_HEADER: 3, SIGNATURE_HEADER: signature},
            ),
            routing_key=booking_routing_key(event, booking_settings.booking_partitions),
        )
        reply = await eventually(
            lambda: replies.get(no_ack=True, fail=False), lambda m: m is not None, 10, "a reply"
        )
        answers = {r["correlation_id"]: r for r in json.loads(reply.body)["replies"]}
        assert answers["good-0"]["status"] == answers["good-1"]["status"] == 201
        assert answers[marker]["status"] == 400
        assert answers[marker]["body"]["code"] == "validation_error"

        dead = await channel.declare_queue(BOOKING_DEAD_LETTER_QUEUE, durable=True)
        parked = []

        async def find_ours() -> bool:
            message = await dead.get(no_ack=True, fail=False)
            if message is not None and json.loads(message.body).get("correlation_id") == marker:
                parked.append(message)
            return bool(parked)

        await eventually(find_ours, bool, 10, "the malformed command in the dead-letter queue")
        assert "request_id" in parked[0].headers["x-booking-error"]
    finally:
        await connection.close()

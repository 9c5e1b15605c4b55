"""When the booking commands cannot be carried out: the broker down is a 503 at once, no
worker answering in time is a 503, and messages a worker cannot read go to the dead-letter
queue."""

from __future__ import annotations

import json
import time

import aio_pika

from tests.integration.booking.support import SMALL, call, fan, make_event, open_client
from tests.support import eventually, free_port, settings_with
from ticketing.messages import (
    BOOKING_DEAD_LETTER_QUEUE,
    BOOKING_EXCHANGE,
    SIGNATURE_HEADER,
    command_signature,
)


async def test_broker_down_answers_503_at_once(booking_settings) -> None:
    down = settings_with(booking_settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    from aiohttp.test_utils import TestClient, TestServer

    from waitingroom.app import create_app

    client = TestClient(TestServer(create_app(down)))
    await client.start_server()
    try:
        started = time.monotonic()
        status, problem, headers = await call(
            client, "POST", "/booking/reserve", fan(down, "f"), {"event_id": 1, "quantity": 1}
        )
        assert (status, problem["code"]) == (503, "backend_unavailable")
        assert headers["Retry-After"] and time.monotonic() - started < 1
    finally:
        await client.close()


async def test_no_worker_answer_in_time_is_503(booking_settings, pool, worker) -> None:
    # 64 partitions at the front door: events in partitions >= 8 reach queues no worker
    # consumes (the workers run 8), so their commands wait and the call times out.
    slow = settings_with(booking_settings, booking_partitions=64, booking_rpc_timeout_seconds=0.5)
    event = await make_event(pool, SMALL)
    while event % 64 < booking_settings.booking_partitions:
        event = await make_event(pool, SMALL)
    client = await open_client(slow)
    try:
        status, problem, headers = await call(
            client, "POST", "/booking/reserve", fan(slow, "w"), {"event_id": event, "quantity": 1}
        )
        assert (status, problem["code"]) == (503, "backend_unavailable")
        assert "Retry-After" in headers
    finally:
        await client.close()


async def test_poison_messages_go_to_the_dead_letter_queue(booking_settings, worker) -> None:
    connection = await aio_pika.connect(booking_settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(BOOKING_EXCHANGE)
        for body in (b"{not json", json.dumps({"type": "booking.reserve", "v": 99}).encode()):
            # Signed, as the front door would: what is read from a signed message is checked.
            signed = {SIGNATURE_HEADER: command_signature(booking_settings.command_secret, body)}
            await exchange.publish(
                aio_pika.Message(body, message_id="poison", headers=signed), routing_key="0"
            )
        dead = await channel.declare_queue(BOOKING_DEAD_LETTER_QUEUE, durable=True)

        async def fetch():
            return await dead.get(no_ack=True, fail=False)

        reasons = []
        for _ in range(2):
            message = await eventually(fetch, lambda m: m is not None, 10, "a dead letter")
            reasons.append(message.headers["x-booking-error"])
        assert any("bad JSON" in r for r in reasons)
        assert any("unsupported version" in r for r in reasons)
    finally:
        await connection.close()

"""An admitted fan's reserve while Redis is out of reach: the front door cannot tell
whether the session still stands, so it answers 503 at once and sends nothing to a
worker (a token whose session ended must not hold seats through an outage). The control:
the same fan, token and body through a front door that reaches Redis is 201."""

from __future__ import annotations

import time
import uuid

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import join, patch_queue, queue_event, wait_status
from tests.support import auth_header, free_port, settings_with


async def test_reserve_is_503_without_redis_and_201_with_it(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=60_000)
    status, _ = await join(qclient, queue_settings, "closed-fan", event)
    assert status == 200
    admitted = await wait_status(qclient, queue_settings, "closed-fan", event, "admitted")
    headers = {
        **auth_header(queue_settings, "closed-fan"),
        "X-Admission-Token": admitted["admission_token"],
    }
    body = {"event_id": event, "quantity": 2}

    down = settings_with(queue_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await open_client(down)
    try:
        # With an Idempotency-Key too: an unreachable queue is not a refusal to replay.
        for extra in ({}, {"Idempotency-Key": str(uuid.uuid4())}):
            started = time.monotonic()
            status, problem, answer_headers = await call(
                client, "POST", "/booking/reserve", {**headers, **extra}, body
            )
            assert (status, problem["code"]) == (503, "backend_unavailable"), problem
            assert answer_headers["Retry-After"]
            assert time.monotonic() - started < 5
    finally:
        await client.close()
    holds = await pool.fetchval("SELECT count(*) FROM holds WHERE event_id = $1", event)
    assert holds == 0

    status, hold, _ = await call(qclient, "POST", "/booking/reserve", headers, body)
    assert status == 201, hold
    assert len(hold["tickets"]) == 2

"""The queue's input refused through its models, through the waitingroom app on real Redis
and PostgreSQL: one 400 shape naming each field, and in the order the routes always kept
(401 and 403 first, then a malformed event id's 404, then the body or query)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import call
from tests.integration.queue.support import admin, get_queue, queue_event
from tests.support import auth_header
from ticketing.config import Settings


async def send(
    client: TestClient, method: str, path: str, headers: dict[str, str], raw: bytes
) -> tuple[int, Any]:
    headers = {**headers, "Content-Type": "application/json"}
    async with client.request(method, path, data=raw, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b'{"paused": true, "nope": 1}', "nope", "nope is not a known field."),
        (
            b'{"admit_per_minute": 1000001}',
            "admit_per_minute",
            "admit_per_minute must be at most 1000000.",
        ),
        (b'{"max_active": -1}', "max_active", "max_active must be at least 0."),
        (b'{"session_seconds": "600"}', "session_seconds", "session_seconds must be an integer."),
        (b'{"paused": "true"}', "paused", "paused must be true or false."),
        (b'{"mode": "fast"}', "mode", "mode must be one of 'manual' or 'auto'."),
    ],
)
async def test_a_patch_is_refused_naming_the_field_and_changes_nothing(
    qclient, queue_settings: Settings, pool, raw: bytes, field: str, message: str
) -> None:
    event = await queue_event(pool)
    before = await get_queue(qclient, queue_settings, event)
    status, problem = await send(
        qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), raw
    )
    assert (status, problem["code"]) == (400, "validation_error")
    assert problem["field"] == field and problem["detail"] == message
    assert problem["errors"] == [{"in": "body", "name": field, "message": message}]
    after = await get_queue(qclient, queue_settings, event)
    assert (after["paused"], after["admit_per_minute"]) == (
        before["paused"],
        before["admit_per_minute"],
    )


async def test_every_wrong_field_of_a_patch_is_named(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    raw = b'{"admit_per_minute": -5, "mode": "x", "speed": 3}'
    status, problem = await send(
        qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), raw
    )
    assert status == 400
    assert {error["name"] for error in problem["errors"]} == {"admit_per_minute", "mode", "speed"}


async def test_who_is_asking_is_told_before_anything_about_the_input(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    fan = auth_header(queue_settings, "curious")
    ops = admin(queue_settings)
    for method, path, headers, raw, expected in (
        ("PATCH", f"/admin/queues/{event}", {}, b"not json", (401, "unauthorized")),
        ("PATCH", f"/admin/queues/{event}", fan, b'{"nope": 1}', (403, "forbidden")),
        ("PATCH", "/admin/queues/abc", ops, b'{"nope": 1}', (404, "event_not_found")),
        ("GET", f"/admin/queues/{event}/series?since_ms=x", {}, b"", (401, "unauthorized")),
        ("GET", f"/admin/queues/{event}/series?since_ms=x", fan, b"", (403, "forbidden")),
        ("GET", "/admin/queues/0/series?since_ms=x", ops, b"", (404, "event_not_found")),
        ("GET", "/queue/abc/fairness?limit=0", {}, b"", (404, "event_not_found")),
        ("POST", f"/queue/{event}/join", {}, b"[1]", (401, "unauthorized")),
        ("POST", "/queue/1e3/join", fan, b"[1]", (404, "event_not_found")),
    ):
        status, problem = await send(qclient, method, path, headers, raw)
        assert (status, problem["code"]) == expected, (method, path)


async def test_join_and_query_refusals_name_their_field(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    fan = auth_header(queue_settings, "typo")
    status, problem = await send(qclient, "POST", f"/queue/{event}/join", fan, b'{"seat": 1}')
    assert (status, problem["field"]) == (400, "seat")
    status, problem = await send(
        qclient, "POST", f"/queue/{event}/join", fan, b'{"queue_ticket": 5}'
    )
    assert (status, problem["detail"]) == (400, "queue_ticket must be a string.")
    status, problem, _ = await call(qclient, "GET", f"/queue/{event}/fairness?limit=1001", {})
    assert (status, problem["parameter"]) == (400, "limit")
    assert problem["errors"] == [
        {"in": "query", "name": "limit", "message": "limit must be at most 1000."}
    ]
    status, problem, _ = await call(
        qclient, "GET", f"/admin/queues/{event}/series?since_ms=-1", admin(queue_settings)
    )
    assert (status, problem["parameter"]) == (400, "since_ms")

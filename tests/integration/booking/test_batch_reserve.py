"""Reserves decided together (booking_worker.reserve), on the real database: the decisions
a fan would get one by one, in command order, in a handful of statements."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from booking_worker.commands import apply_batch
from booking_worker.handlers import Context, build_handlers
from tests.integration.booking.support import make_event, ticket_ids
from ticketing.domain.seating import Section
from ticketing.messages import Command, Release, Reserve

ROWS = [Section("Floor", 3, 6, 4000), Section("Gallery", 1, 4, 2500)]


def reserve(
    user: str,
    event_id: int,
    *,
    ticket_ids: tuple[int, ...] | None = None,
    quantity: int | None = None,
    section: str | None = None,
) -> Command:
    return Reserve(
        request_id=f"req-{uuid.uuid4()}",
        user_id=user,
        event_id=event_id,
        ticket_ids=ticket_ids,
        quantity=quantity,
        section=section,
        admitted=False,
    )


async def run(settings, pool: asyncpg.Pool, commands: list[Command]) -> list[tuple[int, dict]]:
    async with pool.acquire() as conn:
        outcomes = await apply_batch(Context(settings), conn, build_handlers(), commands)
    return [(o.status, o.body) for o in outcomes]


def no_group_undone(caplog) -> None:
    """The group path decided (a fallback to one by one would give the same answers)."""
    assert not [r for r in caplog.records if "undone" in r.getMessage()]


async def test_one_batch_decides_like_one_fan_at_a_time(booking_settings, pool, caplog) -> None:
    event = await make_event(pool, ROWS)
    queue_event = await make_event(pool, ROWS, queue_enabled=True)
    # Row 3's last seat: also in the best-available window, which must not grant it twice.
    first = (await ticket_ids(pool, event))[17]
    commands = [
        reserve("ann", event, quantity=3),
        reserve("bob", event, ticket_ids=(first,)),
        reserve("cat", event, ticket_ids=(first,)),  # the same seat, later in the batch
        reserve("ann", event, quantity=6),  # 3 + 6 > the cap of 8
        reserve("ann", event, quantity=5),  # 3 + 5 = 8 is allowed
        reserve("dan", 999_999, quantity=1),
        reserve("eve", queue_event, quantity=1),
        reserve("fay", event, quantity=4, section="Gallery"),
        reserve("gus", event, quantity=1, section="Gallery"),  # nothing left there
        reserve("hal", event, quantity=0),
    ]
    answers = await run(booking_settings, pool, commands)
    statuses = [status for status, _ in answers]
    assert statuses == [201, 201, 409, 422, 201, 404, 403, 201, 409, 400]
    no_group_undone(caplog)
    codes = [body.get("code") for _, body in answers]
    assert codes[2:4] == ["tickets_unavailable", "limit_exceeded"]
    assert answers[2][1]["unavailable_ticket_ids"] == [first]
    assert codes[5:7] == ["event_not_found", "admission_required"]

    ann = answers[0][1]["tickets"]
    seats = [(t["seat"]["section"], t["seat"]["row"], t["seat"]["number"]) for t in ann]
    assert len({(s, r) for s, r, _ in seats}) == 1  # one row
    assert [n for *_, n in seats] == list(range(seats[0][2], seats[0][2] + 3))  # adjacent
    assert {t["seat"]["section"] for t in answers[7][1]["tickets"]} == {"Gallery"}

    # What was answered is what the database holds, and every answer is stored.
    granted = [t["id"] for status, body in answers if status == 201 for t in body["tickets"]]
    assert len(granted) == len(set(granted)) == 3 + 1 + 5 + 4
    holds = await pool.fetch(
        "SELECT id, user_id, ticket_ids, amount_cents FROM holds WHERE event_id = $1", event
    )
    assert sorted(t for h in holds for t in h["ticket_ids"]) == sorted(granted)
    for status, body in answers:
        if status == 201:
            hold = next(h for h in holds if str(h["id"]) == body["hold_id"])
            assert hold["amount_cents"] == body["amount_cents"]
    reserved = await pool.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status = 'reserved'", event
    )
    assert reserved == len(granted)
    stored = await pool.fetch(
        "SELECT request_id, reply FROM processed_commands WHERE request_id = ANY($1)",
        [c.request_id for c in commands],
    )
    assert len(stored) == len(commands)
    replay = await run(booking_settings, pool, commands)
    assert replay == answers  # a redelivered batch is answered, not applied again
    assert {r["request_id"]: json.loads(r["reply"])["status"] for r in stored} == {
        c.request_id: s for c, s in zip(commands, statuses, strict=True)
    }


async def test_a_batch_mixing_reserves_and_releases(booking_settings, pool) -> None:
    event = await make_event(pool, ROWS)
    ((status, hold),) = await run(booking_settings, pool, [reserve("ivy", event, quantity=2)])
    assert status == 201
    release = Release(request_id=f"rel-{uuid.uuid4()}", user_id="ivy", hold_id=hold["hold_id"])
    again = reserve("ivy", event, quantity=2)
    duplicate = again  # the same request twice in one batch: answered once
    answers = await run(booking_settings, pool, [release, again, duplicate])
    assert [s for s, _ in answers] == [204, 201, 201]
    assert answers[1][1]["hold_id"] == answers[2][1]["hold_id"]
    live = await pool.fetchval(
        "SELECT count(*) FROM holds WHERE event_id = $1 AND status = 'held'", event
    )
    assert live == 1


@pytest.mark.parametrize("size", [1, 40])
async def test_selling_out_in_batches(booking_settings, pool, size, caplog) -> None:
    event = await make_event(pool, [Section("Pit", 2, 10, 1000)])
    fans = [reserve(f"fan-{size}-{i}", event, quantity=3) for i in range(12)]
    answers = []
    for start in range(0, len(fans), size):
        answers += await run(booking_settings, pool, fans[start : start + size])
    assert [s for s, _ in answers].count(201) == 6  # 20 seats, 3 each: six fans, 2 left over
    assert {s for s, _ in answers} == {201, 409}
    no_group_undone(caplog)
    left = await pool.fetchval(
        "SELECT count(*) FROM tickets WHERE event_id = $1 AND status = 'available'", event
    )
    assert left == 2

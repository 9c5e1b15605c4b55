"""Registered presales against the real app, PostgreSQL, Redis and a booking worker:
operators make one (bad settings change nothing), fans register (twice is once, after the
window is refused), the draw issues codes to the first of an order anyone can recompute
from the committed seed, a presale join needs the fan's own code (another account's is
refused, and a refusal changes nothing), the presale's share of the seats holds while the
general sale still has its own, and the general sale follows without codes."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    admin,
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    reserve,
    solve,
    wait_status,
)
from tests.support import auth_header, free_port
from ticketing.domain.queue import draw_order
from waitingroom.queue.presale_gate import presale_gate
from waitingroom.queue.runtime import QUEUE_KEY


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def put_presale(client, settings, event: int, **fields: Any) -> tuple[int, Any]:
    status, body, _ = await call(
        client, "PUT", f"/admin/queues/{event}/presale", admin(settings), fields
    )
    return status, body


async def admin_presale(client, settings, event: int) -> tuple[int, Any]:
    status, body, _ = await call(client, "GET", f"/admin/queues/{event}/presale", admin(settings))
    return status, body


async def register(client, settings, user: str, event: int) -> tuple[int, Any]:
    status, body, _ = await call(
        client, "POST", f"/queue/{event}/presale/registration", auth_header(settings, user)
    )
    return status, body


async def fan_view(client, settings, user: str, event: int) -> dict[str, Any]:
    status, body, _ = await call(
        client, "GET", f"/queue/{event}/presale", auth_header(settings, user)
    )
    assert status == 200, body
    return body


async def draw(client, settings, event: int) -> tuple[int, Any]:
    status, body, _ = await call(
        client, "POST", f"/admin/queues/{event}/presale/draw", admin(settings)
    )
    return status, body


def window(on_sale_in: float, **overrides: Any) -> dict[str, Any]:
    fields = {
        "registration_opens_at": at(-3600),
        "registration_closes_at": at(on_sale_in - (10 if on_sale_in > 20 else 1)),
        "general_sale_at": at(on_sale_in + 3600),
        "codes": 2,
        "seats": 3,
    }
    return {**fields, **overrides}


async def drawn_presale(client, settings, pool, fans: list[str], **overrides: Any) -> int:
    """An event going on sale in 6 s whose presale has these fans registered, drawn (the
    times from the event's own on-sale, however long the steps take)."""
    event = await queue_event(pool, on_sale_in=6)
    on_sale = await pool.fetchval("SELECT on_sale_at FROM events WHERE id = $1", event)
    fields = {
        **window(6),
        "registration_closes_at": (on_sale - timedelta(seconds=3)).isoformat(),
        **overrides,
    }
    status, made = await put_presale(client, settings, event, **fields)
    assert status == 201, made
    for fan in fans:
        assert (await register(client, settings, fan, event))[0] == 201
    closed = {**fields, "registration_closes_at": at(0)}
    assert (await put_presale(client, settings, event, **closed))[0] == 200
    status, drawn = await draw(client, settings, event)
    assert status == 200 and drawn["state"] == "drawn", drawn
    return event


async def test_register_draw_and_the_draw_is_reproducible_from_its_seed(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool, on_sale_in=600)
    assert (await admin_presale(qclient, queue_settings, event))[0] == 404
    for bad in (
        window(600, registration_opens_at=at(-60), registration_closes_at=at(-120)),
        window(600, registration_closes_at=at(700)),  # after on-sale: no time to draw
        window(600, general_sale_at=at(300)),  # the general sale before on-sale
        window(600, seats=21),  # more than the event's 20 seats
        window(600, codes=0),
    ):
        status, problem = await put_presale(qclient, queue_settings, event, **bad)
        assert (status, problem["code"]) == (400, "validation_error"), (bad, problem)
    assert (await admin_presale(qclient, queue_settings, event))[0] == 404  # nothing made

    status, made = await put_presale(qclient, queue_settings, event, **window(600, codes=3))
    assert status == 201, made
    assert (made["state"], made["registrations"], made["seed"]) == ("registration_open", 0, None)
    commitment = made["commitment"]

    # A new registration passes the event's door, as a join does; a refused one registers
    # nothing, and registering again asks for nothing.
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=1)
    pow_fan = f"{event}-pow"
    status, problem = await register(qclient, queue_settings, pow_fan, event)
    assert (status, problem["code"]) == (403, "challenge_required"), problem
    assert (await admin_presale(qclient, queue_settings, event))[1]["registrations"] == 0
    status, _, _ = await call(
        qclient,
        "POST",
        f"/queue/{event}/presale/registration",
        auth_header(queue_settings, pow_fan),
        {"altcha": solve(problem["challenge"])},
    )
    assert status == 201
    assert (await register(qclient, queue_settings, pow_fan, event))[0] == 200
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=0)

    fans = [f"{event}-fan-{i}" for i in range(7)] + [pow_fan]
    first = {}
    for fan in fans:
        status, body = await register(qclient, queue_settings, fan, event)
        assert status == (200 if fan == pow_fan else 201), body
        first[fan] = body["registered_at"]
    status, again = await register(qclient, queue_settings, fans[0], event)
    assert (status, again["registered_at"]) == (200, first[fans[0]])  # idempotent

    status, problem = await draw(qclient, queue_settings, event)
    assert (status, problem["code"]) == (409, "registration_open")
    assert (await admin_presale(qclient, queue_settings, event))[1]["seed"] is None

    closed = window(600, codes=3, registration_closes_at=at(-1))
    status, changed = await put_presale(qclient, queue_settings, event, **closed)
    assert (status, changed["commitment"]) == (200, commitment)  # the same seed committed
    status, problem = await register(qclient, queue_settings, f"{event}-late", event)
    assert (status, problem["code"]) == (409, "registration_closed")
    assert (await register(qclient, queue_settings, fans[1], event))[0] == 200  # still theirs

    status, drawn = await draw(qclient, queue_settings, event)
    assert status == 200, drawn
    assert (drawn["registrations"], drawn["codes_issued"], drawn["codes_redeemed"]) == (8, 3, 0)
    seed = drawn["seed"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == commitment
    status, again = await draw(qclient, queue_settings, event)
    assert (status, again["seed"], again["drawn_at"]) == (200, seed, drawn["drawn_at"])
    status, problem = await put_presale(qclient, queue_settings, event, **closed)
    assert (status, problem["code"]) == (409, "presale_drawn")
    # Whatever a service does, the schema keeps a drawn presale as drawn.
    for statement in (
        "UPDATE presales SET seats = 1 WHERE event_id = $1",
        "UPDATE presale_draws SET seed = repeat('1', 64) WHERE event_id = $1",
        "UPDATE presale_draw_members SET position = position + 100 WHERE event_id = $1",
        "INSERT INTO presale_registrations (event_id, user_id, member_ref) "
        "VALUES ($1, 'sneaked-in', repeat('a', 64))",
    ):
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(statement, event)

    status, record, _ = await call(qclient, "GET", f"/queue/{event}/presale/draw?limit=5", {})
    assert status == 200, record
    assert (record["state"], record["seed"], record["total"], record["codes"]) == (
        "drawn",
        seed,
        8,
        3,
    )
    status, rest, _ = await call(qclient, "GET", record["next"], {})
    order = record["order"] + rest["order"]
    assert record["verified"] is True and rest["next"] is None
    assert order == draw_order(seed, sorted(record["members"] + rest["members"]))
    # The codes went to the first three of the order, to nobody else.
    views = {fan: (await fan_view(qclient, queue_settings, fan, event))["you"] for fan in fans}
    holders = {views[fan]["member"] for fan in fans if views[fan]["code"] is not None}
    assert holders == set(order[:3])
    for fan in fans:
        assert views[fan]["drawn_position"] == order.index(views[fan]["member"]) + 1


async def test_a_presale_join_needs_the_fans_own_code_and_a_refusal_changes_nothing(
    qclient, queue_settings, pool
) -> None:
    fans = [f"fan-{i}-{time.time_ns()}" for i in range(4)]
    event = await drawn_presale(qclient, queue_settings, pool, fans)
    await patch_queue(qclient, queue_settings, event, paused=True)
    views = {fan: (await fan_view(qclient, queue_settings, fan, event))["you"] for fan in fans}
    winners = [fan for fan in fans if views[fan]["code"]]
    loser = next(fan for fan in fans if not views[fan]["code"])
    owner, other = winners
    code = views[owner]["code"]

    status, problem = await join(qclient, queue_settings, loser, event)
    assert (status, problem["code"]) == (403, "presale_code_required"), problem
    assert problem["presale"] == f"/queue/{event}/presale" and problem["general_sale_at"]
    status, problem = await join(qclient, queue_settings, other, event, {"presale_code": code})
    assert (status, problem["code"]) == (403, "presale_code_invalid"), problem
    assert (await queue_status(qclient, queue_settings, other, event))[0] == 404  # not placed
    assert (await admin_presale(qclient, queue_settings, event))[1]["codes_redeemed"] == 0
    # Redis losing the presale's key opens nothing: it is read again from the record.
    store = qclient.app[QUEUE_KEY].store
    assert await store.redis.delete(store.key(event, "presale")) == 1
    presale_gate(qclient.app[QUEUE_KEY])._until.clear()
    status, problem = await join(qclient, queue_settings, loser, event)
    assert (status, problem["code"]) == (403, "presale_code_required"), problem
    assert await store.redis.get(store.key(event, "presale")) is not None  # written back

    # The code is checked before the door: a refused join leaves the fan's challenge unused.
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=1)
    status, challenge, _ = await call(
        qclient, "GET", f"/queue/{event}/challenge", auth_header(queue_settings, owner)
    )
    solved = solve(challenge)
    status, problem = await join(qclient, queue_settings, owner, event, {"altcha": solved})
    assert (status, problem["code"]) == (403, "presale_code_required"), problem
    typed = code.lower().replace("-", " ")  # as a fan may type it
    body = {"altcha": solved, "presale_code": typed}
    assert (await join(qclient, queue_settings, owner, event, body))[0] == 200
    status, problem = await join(qclient, queue_settings, owner, event, body)
    assert (status, problem["code"]) == (403, "challenge_failed")  # used by that join
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=0)

    status, joined = await join(qclient, queue_settings, owner, event, {"presale_code": typed})
    assert status == 200, joined
    status, again = await join(qclient, queue_settings, owner, event, {"presale_code": code})
    assert (status, again["position"]) == (200, joined["position"])  # the same join
    assert (await fan_view(qclient, queue_settings, owner, event))["you"]["redeemed"] is True
    assert (await admin_presale(qclient, queue_settings, event))[1]["codes_redeemed"] == 1
    # Redeemed, it is still no one else's.
    status, problem = await join(qclient, queue_settings, loser, event, {"presale_code": code})
    assert (status, problem["code"]) == (403, "presale_code_invalid")
    status, problem = await join(
        qclient, queue_settings, loser, event, {"presale_code": "0000-0000-0000"}
    )
    assert (status, problem["code"]) == (403, "presale_code_invalid")
    own = views[other]["code"]
    assert (await join(qclient, queue_settings, other, event, {"presale_code": own}))[0] == 200


async def test_the_presale_keeps_to_its_share_and_the_general_sale_follows(
    qclient, queue_settings, pool
) -> None:
    fans = [f"fan-{i}-{time.time_ns()}" for i in range(6)]
    event = await drawn_presale(
        qclient, queue_settings, pool, fans, general_sale_at=at(20), codes=6, seats=3
    )
    await in_snapshot(qclient, queue_settings, event)
    for fan in fans:
        code = (await fan_view(qclient, queue_settings, fan, event))["you"]["code"]
        assert (await join(qclient, queue_settings, fan, event, {"presale_code": code}))[0] == 200
    # All six at once, far past what the share serves (the queue admits for the share
    # only, test_presale_admission.py): here the booking worker's own check is the test.
    await patch_queue(
        qclient, queue_settings, event, admit_per_minute=6000, admission_margin_percent=1000
    )
    tokens = {}
    for fan in fans:
        admitted = await wait_status(qclient, queue_settings, fan, event, "admitted")
        tokens[fan] = admitted["admission_token"]
    first, *rest = fans
    status, hold = await reserve(qclient, queue_settings, first, event, tokens[first], 2)
    assert status == 201, hold
    status, problem = await reserve(qclient, queue_settings, rest[0], event, tokens[rest[0]], 2)
    assert (status, problem["code"], problem["seats_left"]) == (409, "presale_sold_out", 1)
    # Five fans at once for the one seat left: one gets it.
    answers = await asyncio.gather(
        *(reserve(qclient, queue_settings, fan, event, tokens[fan], 1) for fan in rest)
    )
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409, 409], answers
    assert {body["code"] for status, body in answers if status == 409} == {"presale_sold_out"}
    assert (await admin_presale(qclient, queue_settings, event))[1]["seats_taken"] == 3

    # The general sale: no code asked, and the seats beyond the presale's share are sold.
    fan = f"general-{time.time_ns()}"
    status, problem = await join(qclient, queue_settings, fan, event)
    assert (status, problem["code"]) == (403, "presale_code_required")
    general = datetime.fromisoformat(problem["general_sale_at"])
    await asyncio.sleep(max(0.0, (general - datetime.now(UTC)).total_seconds()) + 1.1)
    assert (await join(qclient, queue_settings, fan, event))[0] == 200
    admitted = await wait_status(qclient, queue_settings, fan, event, "admitted")
    status, hold = await reserve(
        qclient, queue_settings, fan, event, admitted["admission_token"], 4
    )
    assert status == 201, hold


async def test_a_presale_is_made_before_on_sale_only(qclient, queue_settings, pool) -> None:
    late = await queue_event(pool, on_sale_in=-60)
    status, problem = await put_presale(
        qclient,
        queue_settings,
        late,
        **window(-60, registration_opens_at=at(-600), registration_closes_at=at(-120)),
    )
    assert (status, problem["code"]) == (409, "presale_too_late"), problem
    busy = await queue_event(pool, on_sale_in=600)
    assert (await join(qclient, queue_settings, "early-bird", busy))[0] == 200  # pre-queue
    status, problem = await put_presale(qclient, queue_settings, busy, **window(600))
    assert (status, problem["code"]) == (409, "presale_queue_not_empty"), problem
    for event in (late, busy):
        assert (await admin_presale(qclient, queue_settings, event))[0] == 404


async def test_postgresql_down_the_presale_a_process_knew_stands(
    qclient, queue_settings, pool
) -> None:
    """A join of an event without a presale does not wait on the record once the process
    knows it has none; an event it never looked up cannot be told, and is a 503."""
    known, unknown = await queue_event(pool), await queue_event(pool)
    for event in (known, unknown):
        await patch_queue(qclient, queue_settings, event, paused=True)
    assert (await join(qclient, queue_settings, "pg-fan-1", known))[0] == 200
    runtime = qclient.app[QUEUE_KEY]
    gate = presale_gate(runtime)
    real = gate.record.pool
    dead = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0, timeout=1
    )
    gate.record.pool = dead
    try:
        store = runtime.store
        await store.redis.delete(store.key(known, "presale"), store.key(unknown, "presale"))
        gate._until[known] = (-math.inf, gate._until[known][1])  # its second is over
        assert (await join(qclient, queue_settings, "pg-fan-2", known))[0] == 200
        status, problem = await join(qclient, queue_settings, "pg-fan-3", unknown)
        assert (status, problem["code"]) == (503, "backend_unavailable"), problem
    finally:
        gate.record.pool = real
        await dead.close()
    assert (await join(qclient, queue_settings, "pg-fan-3", unknown))[0] == 200

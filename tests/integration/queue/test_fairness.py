"""The fair start: fans who come before on-sale are drawn into a random order at on-sale,
ahead of later arrivals (first come, first served), and anyone can check the draw."""

from __future__ import annotations

import asyncio
import hashlib
import time

import asyncpg
import pytest

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    get_queue,
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
)
from tests.support import auth_header, eventually, free_port
from ticketing.config import Settings
from ticketing.domain.queue import commitment, draw_order, member_key, member_ref
from waitingroom.queue.draw_record import FairnessRecord
from waitingroom.queue.runtime import QUEUE_KEY
from waitingroom.queue.scripts import NAMES

EARLY = [f"early-{i:02d}" for i in range(30)]
LATE = [f"late-{i}" for i in range(5)]


def ref_of(settings: Settings, event: int, user: str) -> str:
    """The fan's member in the record, as the room computes it with its secret."""
    return member_ref(member_key(settings.queue_ticket_secret, event), event, user)


async def fairness(client, event: int, headers: dict | None = None, query: str = "") -> dict:
    status, body, _ = await call(client, "GET", f"/queue/{event}/fairness{query}", headers or {})
    assert status == 200, body
    return body


async def drawn_record(client, event: int) -> dict:
    return await eventually(
        lambda: fairness(client, event), lambda f: f["state"] == "drawn", 10, "the draw"
    )


async def lose_the_queue(client, event: int) -> None:
    """Every Redis key of the event's queue gone, as after a Redis failover without them."""
    store = client.app[QUEUE_KEY].store
    assert await store.redis.delete(*store.keys(event, *NAMES)) > 0


async def test_the_pre_queue_is_drawn_at_on_sale_ahead_of_later_fans(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool, on_sale_in=4)
    # Nobody is admitted during the test, so every place stays where the draw put it.
    await patch_queue(qclient, queue_settings, event, paused=True)
    for user in EARLY:
        status, body = await join(qclient, queue_settings, user, event)
        assert status == 200, body
        assert (body["status"], body["position"], body["ahead"]) == ("pre_queue", None, None)
    _, again = await join(qclient, queue_settings, EARLY[0], event)
    assert again["status"] == "pre_queue"
    await in_snapshot(qclient, queue_settings, event)

    before = await fairness(qclient, event)
    assert before["state"] == "committed" and before["seed"] is None
    assert before["order"] is None and len(before["commitment"]) == 64

    drawn = await eventually(
        lambda: fairness(qclient, event), lambda f: f["state"] == "drawn", 10, "the draw"
    )
    seed = drawn["seed"]
    # the seed revealed is the one committed to before on-sale
    assert drawn["commitment"] == before["commitment"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == drawn["commitment"]
    assert drawn["committed_at"] < drawn["revealed_at"]
    # the order is a permutation of exactly the early fans, recomputable from the seed,
    # and not their arrival order
    arrival = [ref_of(queue_settings, event, user) for user in EARLY]
    assert sorted(drawn["members"]) == sorted(arrival) == drawn["members"]
    assert drawn["order"] == draw_order(seed, drawn["members"])
    assert drawn["order"] != arrival
    assert drawn["verified"] is True

    for user in LATE:
        status, body = await join(qclient, queue_settings, user, event)
        assert body["status"] == "paused"  # in line, admission paused by the operator
    # the queue follows the draw, then first come, first served
    for user in EARLY:
        _, body = await queue_status(qclient, queue_settings, user, event)
        assert body["position"] == drawn["order"].index(ref_of(queue_settings, event, user)) + 1, (
            user
        )
    late_positions = [
        (await queue_status(qclient, queue_settings, u, event))[1]["position"] for u in LATE
    ]
    assert late_positions == list(range(len(EARLY) + 1, len(EARLY) + len(LATE) + 1))
    # a fan can find themselves in the published order
    mine = await fairness(qclient, event, auth_header(queue_settings, EARLY[3]))
    expected = drawn["order"].index(ref_of(queue_settings, event, EARLY[3])) + 1
    assert mine["you"]["drawn_position"] == expected


async def test_fans_arriving_after_on_sale_are_served_first_come_first_served(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, max_active=2, admit_per_minute=6000)
    fans = [f"fifo-{i}" for i in range(6)]
    for user in fans:
        await join(qclient, queue_settings, user, event)

    async def admitted() -> list[str]:
        statuses = [await queue_status(qclient, queue_settings, u, event) for u in fans]
        return [
            u for u, (_, body) in zip(fans, statuses, strict=True) if body["status"] == "admitted"
        ]

    assert await eventually(admitted, lambda a: len(a) == 2, 10, "two admitted") == fans[:2]
    for user in fans[:2]:
        await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, user))
    assert await eventually(admitted, lambda a: len(a) == 2, 5, "the next two") == fans[2:4]
    # nobody drawn here: the record says so and shows an empty draw
    record = await fairness(qclient, event)
    assert record["state"] == "drawn" and record["order"] == []


async def test_the_order_is_paged_with_a_digest_of_the_whole(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool, on_sale_in=3)
    await patch_queue(qclient, queue_settings, event, paused=True)
    fans = [f"paged-{i:02d}" for i in range(23)]
    for user in fans:
        await join(qclient, queue_settings, user, event)
    whole = await drawn_record(qclient, event)
    assert whole["total"] == 23 and len(whole["order"]) == 23 and whole["next"] is None
    order, members, query = [], [], "?limit=5"
    pages = 0
    while query is not None:
        page = await fairness(qclient, event, query=query)
        assert (page["total"], page["limit"], page["verified"]) == (23, 5, True)
        assert len(page["order"]) == len(page["members"]) <= 5
        order += page["order"]
        members += page["members"]
        pages += 1
        query = page["next"] and page["next"].removeprefix(f"/queue/{event}/fairness")
    assert pages == 5
    # an auditor who fetched every page has the whole order, and can prove it
    assert order == whole["order"]
    assert hashlib.sha256("\n".join(order).encode()).hexdigest() == whole["order_sha256"]
    assert members == sorted(order) == sorted(ref_of(queue_settings, event, u) for u in fans)
    assert order == draw_order(whole["seed"], members)
    # a fan finds their drawn place whatever page they look at
    mine = await fairness(
        qclient, event, auth_header(queue_settings, fans[7]), query="?offset=20&limit=1"
    )
    assert mine["you"]["drawn_position"] == order.index(ref_of(queue_settings, event, fans[7])) + 1
    assert mine["order"] == order[20:21]
    beyond = await fairness(qclient, event, query="?offset=23")
    assert (beyond["order"], beyond["members"], beyond["next"]) == ([], [], None)


@pytest.mark.parametrize(
    "query", ["offset=-1", "limit=0", "limit=1001", "offset=x", "limit=2.5", "offset=1e3"]
)
async def test_bad_paging_is_refused(qclient, pool, query) -> None:
    event = await queue_event(pool)
    status, body, headers = await call(qclient, "GET", f"/queue/{event}/fairness?{query}", {})
    assert (status, body["code"]) == (400, "validation_error"), query
    assert headers["Content-Type"].startswith("application/problem+json")


async def test_the_record_outlives_the_queue_and_a_lost_queue_is_not_drawn_again(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool, on_sale_in=3)
    await patch_queue(qclient, queue_settings, event, paused=True)
    fans = [f"kept-{i:02d}" for i in range(12)]
    tickets = {}
    for user in fans:
        _, body = await join(qclient, queue_settings, user, event)
        tickets[user] = body["queue_ticket"]  # a pre-queue ticket
    record = await drawn_record(qclient, event)
    assert record["verified"] is True
    # half the fans looked at their place after the draw: their tickets carry it
    for user in fans[::2]:
        _, body = await queue_status(qclient, queue_settings, user, event)
        tickets[user] = body["queue_ticket"]

    # The pre-queue fan drawn first of those still holding a pre-queue ticket comes back
    # only after the draw has been put back; everyone else before.
    pre_ticketed = fans[1::2]
    latecomer = min(
        pre_ticketed, key=lambda u: record["order"].index(ref_of(queue_settings, event, u))
    )
    assert record["order"].index(ref_of(queue_settings, event, latecomer)) + 1 < len(fans)

    # With the queue intact, a pre-queue ticket brought back (the page sends its stored one
    # with every join) restores nothing and costs no query of the draw record: a fan who
    # left joins at the back.
    record_store = qclient.app[QUEUE_KEY].admitter.fair_start.record
    looked_up = []
    real_positions = record_store.positions

    async def counted_positions(*args, **kwargs):
        looked_up.append(args)
        return await real_positions(*args, **kwargs)

    record_store.positions = counted_positions
    leaver = next(user for user in pre_ticketed if user != latecomer)
    await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, leaver))
    _, rejoined = await join(
        qclient, queue_settings, leaver, event, {"queue_ticket": tickets[leaver]}
    )
    assert rejoined.get("position") == len(fans) and looked_up == [], rejoined

    # Redis loses the queue. The fans come back with their tickets before the admitter
    # looks again (it is kept out by holding the draw lock meanwhile).
    async with FairnessRecord(pool).locked(event):
        await lose_the_queue(qclient, event)
        assert await fairness(qclient, event) == record
        await patch_queue(qclient, queue_settings, event, paused=True)
        for user in fans:
            if user == latecomer:
                continue
            status, body = await join(
                qclient, queue_settings, user, event, {"queue_ticket": tickets[user]}
            )
            assert status == 200, body
        # a pre-queue ticket brought back after on-sale took the recorded place at once
        returned = next(user for user in pre_ticketed if user != latecomer)
        _, back = await join(qclient, queue_settings, returned, event)
        assert back["status"] == "paused", back

    async def drawn() -> bool:
        return (await get_queue(qclient, queue_settings, event))["drawn"]

    await eventually(drawn, bool, 10, "the draw put back")
    # after it, the latecomer's pre-queue ticket still gives the place the record gives
    status, body = await join(
        qclient, queue_settings, latecomer, event, {"queue_ticket": tickets[latecomer]}
    )
    assert (status, body["position"]) == (
        200,
        record["order"].index(ref_of(queue_settings, event, latecomer)) + 1,
    ), body
    # everyone is where the recorded draw put them, and the record is unchanged
    for user in fans:
        _, body = await queue_status(qclient, queue_settings, user, event)
        assert body["position"] == record["order"].index(ref_of(queue_settings, event, user)) + 1, (
            user
        )
    assert await fairness(qclient, event) == record
    _, late = await join(qclient, queue_settings, "kept-late", event)
    assert late["position"] == len(fans) + 1


async def test_a_seed_lost_before_on_sale_is_replaced_in_the_open(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool, on_sale_in=6)
    first = await fairness(qclient, event)
    assert (first["state"], first["epoch"], first["superseded"]) == ("committed", 1, [])
    _, body = await join(qclient, queue_settings, "early-bird", event)
    await lose_the_queue(qclient, event)  # the secret seed with it: never to be revealed
    # the fan is back at once with their ticket; the room commits again all the same
    ticket = {"queue_ticket": body["queue_ticket"]}
    _, back = await join(qclient, queue_settings, "early-bird", event, ticket)
    assert back["status"] == "pre_queue"
    again = await eventually(
        lambda: fairness(qclient, event), lambda f: f["epoch"] == 2, 5, "a new commitment"
    )
    assert again["commitment"] != first["commitment"] and again["seed"] is None
    assert again["superseded"] == [
        {
            "epoch": 1,
            "commitment": first["commitment"],
            "committed_at": first["committed_at"],
            "superseded_at": again["committed_at"],
        }
    ]
    drawn = await drawn_record(qclient, event)
    # the seed revealed is the new commitment's; the lost one stays on the record
    assert commitment(drawn["seed"]) == drawn["commitment"] == again["commitment"]
    assert (drawn["epoch"], drawn["superseded"]) == (2, again["superseded"])
    assert (
        drawn["order"] == [ref_of(queue_settings, event, "early-bird")]
        and drawn["verified"] is True
    )


async def test_postgresql_down_at_on_sale_holds_the_line_until_the_draw_is_on_record(
    qclient, queue_settings, pool
) -> None:
    """No order is used that is not on record: while PostgreSQL is unreachable at on-sale
    nobody is admitted and the pre-queue stays undrawn (later fans queue behind it); once
    it answers again the draw is made, recorded and in force within seconds."""
    event = await queue_event(pool, on_sale_in=3)
    await in_snapshot(qclient, queue_settings, event)
    early = [f"pg-early-{i}" for i in range(8)]
    for user in early:
        status, body = await join(qclient, queue_settings, user, event)
        assert (status, body["status"]) == (200, "pre_queue"), body
    committed = await fairness(qclient, event)
    assert committed["state"] == "committed"

    # PostgreSQL as the admitter sees it goes away (a pool to a port nobody listens on: a
    # refused connection, as when the server is down) before on-sale.
    fair_start = qclient.app[QUEUE_KEY].admitter.fair_start
    real = fair_start.record.pool
    dead = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0, timeout=1
    )
    fair_start.record.pool = dead
    try:
        await patch_queue(qclient, queue_settings, event, paused=False, admit_per_minute=6000)
        await asyncio.sleep(3.5)  # the scenario, not a wait: the clock passes on-sale
        _, late = await join(qclient, queue_settings, "pg-late", event)
        assert late["status"] == "waiting", late
        await asyncio.sleep(2)  # the scenario: a window in which the admitter tries each tick
        # The record is not readable either: a clear 503, not a guess.
        status, body, headers = await call(qclient, "GET", f"/queue/{event}/fairness", {})
        assert (status, body["code"]) == (503, "backend_unavailable") and "Retry-After" in headers
        figures = await get_queue(qclient, queue_settings, event)
        assert figures["drawn"] is False and figures["admitted_total"] == 0, figures
        for user in early:
            _, body = await queue_status(qclient, queue_settings, user, event)
            assert body["status"] == "pre_queue", body
        # Nor is the fan who came after on-sale let in ahead of the undrawn pre-queue.
        _, late = await queue_status(qclient, queue_settings, "pg-late", event)
        assert late["status"] == "waiting", late
    finally:
        fair_start.record.pool = real
        await dead.close()

    drawn = await drawn_record(qclient, event)  # within 10 s of PostgreSQL answering
    assert sorted(drawn["members"]) == sorted(ref_of(queue_settings, event, u) for u in early)
    # The drawn fans go first, the later one after all of them.
    admitted = await eventually(
        lambda: get_queue(qclient, queue_settings, event),
        lambda q: q["admitted_total"] == len(early) + 1,
        10,
        "everyone admitted",
    )
    assert admitted["drawn"] is True
    _, late = await queue_status(qclient, queue_settings, "pg-late", event)
    assert late["status"] == "admitted"


async def test_a_long_draw_holds_up_no_other_queue(qclient, queue_settings, pool) -> None:
    """Drawing and recording a big pre-queue takes seconds (3.1 s for 200,000 fans): the
    process's other queues keep admitting meanwhile. The draw here is made slow on purpose."""
    other = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, other)
    await patch_queue(qclient, queue_settings, other, paused=True)
    await eventually(
        lambda: get_queue(qclient, queue_settings, other),
        lambda q: q["drawn"],
        10,
        "the other event drawn (nobody in its pre-queue)",
    )

    fair_start = qclient.app[QUEUE_KEY].admitter.fair_start
    real_draw = fair_start.draw
    drawing = asyncio.Event()

    async def slow_draw(event):
        drawing.set()
        await asyncio.sleep(4)
        return await real_draw(event)

    fair_start.draw = slow_draw
    try:
        big = await queue_event(pool, on_sale_in=1.5)
        await in_snapshot(qclient, queue_settings, big)
        status, _ = await join(qclient, queue_settings, "long-draw-early", big)
        assert status == 200
        await asyncio.wait_for(drawing.wait(), 10)  # on-sale: the slow draw is under way

        for user in ("long-draw-a", "long-draw-b"):
            await join(qclient, queue_settings, user, other)
        asked = time.monotonic()
        await patch_queue(qclient, queue_settings, other, paused=False, admit_per_minute=6000)
        await eventually(
            lambda: get_queue(qclient, queue_settings, other),
            lambda q: q["admitted_total"] == 2,
            3,
            "the other queue's admissions",
        )
        assert time.monotonic() - asked < 2.0
        assert not (await get_queue(qclient, queue_settings, big))["drawn"]  # still drawing
    finally:
        fair_start.draw = real_draw
    await drawn_record(qclient, big)

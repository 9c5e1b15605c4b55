"""The fair start: fans who come before on-sale are drawn into a random order at on-sale,
ahead of later arrivals (first come, first served), and anyone can check the draw."""

from __future__ import annotations

import hashlib

from tests.integration.test_booking_support import call
from tests.integration.test_queue_support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
)
from tests.support import auth_header, eventually
from ticketing.domain.queue import draw_order, member_ref

pytest_plugins = ["tests.integration.test_booking_support", "tests.integration.test_queue_support"]

EARLY = [f"early-{i:02d}" for i in range(30)]
LATE = [f"late-{i}" for i in range(5)]


async def fairness(client, event: int, headers: dict | None = None) -> dict:
    status, body, _ = await call(client, "GET", f"/queue/{event}/fairness", headers or {})
    assert status == 200, body
    return body


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
    arrival = [member_ref(event, user) for user in EARLY]
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
        assert body["position"] == drawn["order"].index(member_ref(event, user)) + 1, user
    late_positions = [(await queue_status(qclient, queue_settings, u, event))[1]["position"]
                      for u in LATE]
    assert late_positions == list(range(len(EARLY) + 1, len(EARLY) + len(LATE) + 1))
    # a fan can find themselves in the published order
    mine = await fairness(qclient, event, auth_header(queue_settings, EARLY[3]))
    expected = drawn["order"].index(member_ref(event, EARLY[3])) + 1
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
        return [u for u, (_, body) in zip(fans, statuses, strict=True)
                if body["status"] == "admitted"]

    assert await eventually(admitted, lambda a: len(a) == 2, 10, "two admitted") == fans[:2]
    for user in fans[:2]:
        await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, user))
    assert await eventually(admitted, lambda a: len(a) == 2, 5, "the next two") == fans[2:4]
    # nobody drawn here: the record says so and shows an empty draw
    record = await fairness(qclient, event)
    assert record["state"] == "drawn" and record["order"] == []

"""The console's series (``GET /admin/queues/{event_id}/series``): a sample a second per
queue with the queue's figures and inventory, seats held and sold per second, through the
waitingroom app (its counting loop running) on real Redis, PostgreSQL, RabbitMQ and
localstripe."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tests.integration.booking.support import call, fan, make_event
from tests.integration.payments.support import booking_stack
from tests.integration.queue.support import (
    SEATS,
    admin,
    join,
    patch_queue,
    queue_event,
    wait_status,
)
from tests.support import auth_header, eventually

TOTAL_SEATS = sum(section.capacity for section in SEATS)


async def series(client, settings, event: int, since_ms: int = 0) -> list[dict[str, Any]]:
    path = f"/admin/queues/{event}/series" + (f"?since_ms={since_ms}" if since_ms else "")
    status, body, _ = await call(client, "GET", path, admin(settings))
    assert status == 200, body
    assert (body["event_id"], body["window_seconds"]) == (event, 900)
    return body["samples"]


async def last_sample_where(client, settings, event: int, wanted, what: str, timeout=10):
    async def latest() -> dict[str, Any] | None:
        samples = await series(client, settings, event)
        return samples[-1] if samples else None

    return await eventually(latest, lambda s: s is not None and wanted(s), timeout, what)


async def test_a_sample_a_second_follows_the_queue_holds_and_sales(
    paying_queue_settings, pool
) -> None:
    settings = paying_queue_settings
    event = await queue_event(pool)
    async with booking_stack(settings, pool) as client:
        await patch_queue(client, settings, event, paused=True, admit_per_minute=6000)
        for user in ("ann", "bob", "cy"):
            await join(client, settings, user, event)

        # Waiting, paused: the figures and the whole event still to sell.
        waiting = await last_sample_where(
            client, settings, event, lambda s: s["waiting"] == 3, "three fans waiting"
        )
        assert {
            k: waiting[k]
            for k in (
                "pre_queue",
                "active",
                "admitted_total",
                "available",
                "reserved",
                "booked",
                "seats_held_total",
                "effective_admit_per_minute",
                "unclaimed",
            )
        } == {
            "pre_queue": 0,
            "active": 0,
            "admitted_total": 0,
            "available": TOTAL_SEATS,
            "reserved": 0,
            "booked": 0,
            "seats_held_total": 0,
            "effective_admit_per_minute": 6000,
            "unclaimed": 0,
        }

        # Once a second: five more samples, each about a second after the one before.
        first = await series(client, settings, event)
        samples = await eventually(
            lambda: series(client, settings, event),
            lambda got: len(got) >= len(first) + 5,
            10,
            "five more samples",
        )
        gaps = [b["at_ms"] - a["at_ms"] for a, b in pairwise(samples)]
        assert all(700 <= gap <= 2000 for gap in gaps), gaps
        assert 900 <= sum(gaps) / len(gaps) <= 1300, gaps
        newer = await series(client, settings, event, since_ms=samples[-2]["at_ms"])
        assert newer and newer[0]["at_ms"] == samples[-1]["at_ms"]
        assert all(s["at_ms"] > samples[-2]["at_ms"] for s in newer)

        # Admitted fans hold 2 + 1 seats; Ann pays for hers.
        await patch_queue(client, settings, event, paused=False)
        holds = {}
        for user, seats in (("ann", 2), ("bob", 1)):
            token = (await wait_status(client, settings, user, event, "admitted"))[
                "admission_token"
            ]
            me = {**fan(settings, user), "X-Admission-Token": token}
            status, hold, _ = await call(
                client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": seats}
            )
            assert status == 201, hold
            holds[user] = hold
        held = await last_sample_where(
            client,
            settings,
            event,
            lambda s: s["seats_held_total"] == 3 and s["reserved"] == 3,
            "three seats held",
        )
        assert (held["available"], held["booked"], held["active"], held["waiting"]) == (
            TOTAL_SEATS - 3,
            0,
            3,
            0,
        )
        assert (held["admitted_total"], held["unclaimed"]) == (3, 1)  # Cy holds nothing yet
        status, booking, _ = await call(
            client,
            "POST",
            "/booking/confirm",
            fan(settings, "ann"),
            {"hold_id": holds["ann"]["hold_id"], "payment_method": "pm_card_visa"},
        )
        assert status == 201, booking
        sold = await last_sample_where(
            client, settings, event, lambda s: s["booked"] == 2, "two seats sold"
        )
        assert (sold["reserved"], sold["available"], sold["seats_held_total"]) == (
            1,
            TOTAL_SEATS - 3,
            3,
        )

        # The rates: every seat held and sold shows up, averaged over 5 s spans.
        window = await series(client, settings, event)
        held_rates = [s["seats_held_per_second"] or 0 for s in window]
        sold_rates = [s["seats_sold_per_second"] or 0 for s in window]
        assert 0 < max(held_rates) <= 3 and 0 < max(sold_rates) <= 2
        # Before the first hold there was nothing to count.
        before = [s for s in window if s["seats_held_total"] == 0]
        assert before and all(not s["seats_held_per_second"] for s in before)


async def test_the_series_is_for_operators_of_known_queues(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    path = f"/admin/queues/{event}/series"
    status, body, headers = await call(qclient, "GET", path, {})
    assert (status, body["code"]) == (401, "unauthorized")
    assert headers["Content-Type"].startswith("application/problem+json")
    status, body, _ = await call(qclient, "GET", path, auth_header(queue_settings, "a-fan"))
    assert (status, body["code"]) == (403, "forbidden")
    no_queue = await make_event(pool, SEATS)
    for unknown in (999_999_999, no_queue, "abc"):
        status, body, headers = await call(
            qclient, "GET", f"/admin/queues/{unknown}/series", admin(queue_settings)
        )
        assert (status, body["code"]) == (404, "event_not_found"), unknown
        assert headers["Content-Type"].startswith("application/problem+json")
    status, body, _ = await call(qclient, "GET", path + "?since_ms=soon", admin(queue_settings))
    assert (status, body["code"]) == (400, "validation_error")
    status, body, _ = await call(qclient, "GET", path, admin(queue_settings))
    assert status == 200 and isinstance(body["samples"], list)

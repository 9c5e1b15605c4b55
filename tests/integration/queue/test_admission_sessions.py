"""An admitted fan's session: the admission token binds the fan, the event and the time,
and stops working once the session ends; leaving, a session running out, or a booking
ends it and hands the slot to the next fan."""

from __future__ import annotations

import time

from tests.integration.booking.support import call, fan
from tests.integration.queue.support import (
    get_queue,
    join,
    patch_queue,
    queue_event,
    queue_status,
    wait_status,
)
from tests.support import auth_header, eventually
from waitingroom.queue.admission import admission_for_session


async def test_admission_token_binds_user_event_and_time(qclient, queue_settings, pool) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=6000)
    await join(qclient, queue_settings, "admitted-fan", event)
    body = await wait_status(qclient, queue_settings, "admitted-fan", event, "admitted")
    assert (body["position"], body["ahead"], body["eta_seconds"]) == (0, 0, 0)
    token = body["admission_token"]
    assert body["admission_expires_at"].endswith("Z")
    me = fan(queue_settings, "admitted-fan")
    reserve = {"event_id": event, "quantity": 1}
    status, problem, _ = await call(qclient, "POST", "/booking/reserve", me, reserve)
    assert (status, problem["code"]) == (403, "admission_required")
    expired = admission_for_session(queue_settings, "admitted-fan", event, int(time.time()) - 60)
    for who, body_, token_ in (
        (fan(queue_settings, "someone-else"), reserve, token),  # another fan's token
        (me, {"event_id": other, "quantity": 1}, token),  # another event's
        (me, reserve, expired),  # expired
    ):
        status, problem, _ = await call(
            qclient, "POST", "/booking/reserve", {**who, "X-Admission-Token": token_}, body_
        )
        assert (status, problem["code"]) == (403, "admission_invalid")
    status, hold, _ = await call(
        qclient, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, reserve
    )
    assert status == 201, hold
    # joining again while admitted answers the same session and token
    _, again = await join(qclient, queue_settings, "admitted-fan", event)
    assert again["status"] == "admitted" and again["admission_token"] == token
    # once the session ends (here: the fan leaves), the unexpired token admits no more
    await call(qclient, "POST", f"/queue/{event}/leave", me)
    status, problem, _ = await call(
        qclient, "POST", "/booking/reserve", {**me, "X-Admission-Token": token}, reserve
    )
    assert (status, problem["code"]) == (403, "admission_invalid"), problem


async def test_leaving_or_expiring_frees_the_slot_for_the_next_fan(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, admit_per_minute=6000, max_active=1)
    for user in ("one", "two", "three"):
        await join(qclient, queue_settings, user, event)
    await wait_status(qclient, queue_settings, "one", event, "admitted")
    _, two = await queue_status(qclient, queue_settings, "two", event)
    assert (two["status"], two["position"]) == ("waiting", 1)
    status, _, _ = await call(
        qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "one")
    )
    assert status == 204
    status, problem = await queue_status(qclient, queue_settings, "one", event)
    assert (status, problem["code"]) == (404, "not_in_queue")
    await wait_status(qclient, queue_settings, "two", event, "admitted", timeout=3)
    # sessions run out on their own too
    await patch_queue(qclient, queue_settings, event, session_seconds=1)
    await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "two"))
    await wait_status(qclient, queue_settings, "three", event, "admitted", timeout=3)

    async def three() -> int:
        return (await queue_status(qclient, queue_settings, "three", event))[0]

    await eventually(three, lambda s: s == 404, 4, "the 1 s session to end")
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["active"], figures["admitted_total"]) == (0, 3)
    # leaving twice, or without having joined, is fine
    for _ in range(2):
        status, _, _ = await call(
            qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, "two")
        )
        assert status == 204


async def test_booking_ends_the_session_and_hands_the_slot_on(paying_queue_settings, pool) -> None:
    from tests.integration.payments.support import booking_stack

    settings = paying_queue_settings
    event = await queue_event(pool)
    async with booking_stack(settings, pool) as client:
        await patch_queue(client, settings, event, admit_per_minute=6000, max_active=1)
        await join(client, settings, "buyer", event)
        await join(client, settings, "next-in-line", event)
        token = (await wait_status(client, settings, "buyer", event, "admitted"))["admission_token"]
        me = {**fan(settings, "buyer"), "X-Admission-Token": token}
        status, hold, _ = await call(
            client, "POST", "/booking/reserve", me, {"event_id": event, "quantity": 2}
        )
        assert status == 201, hold
        _, still, _ = await call(client, "GET", f"/queue/{event}/status", me)
        assert still["status"] == "admitted"  # holding seats is not booking them
        status, booking, _ = await call(
            client,
            "POST",
            "/booking/confirm",
            fan(settings, "buyer"),
            {"hold_id": hold["hold_id"], "payment_method": "pm_card_visa"},
        )
        assert status == 201, booking
        status, problem = await queue_status(client, settings, "buyer", event)
        assert (status, problem["code"]) == (404, "not_in_queue")
        await wait_status(client, settings, "next-in-line", event, "admitted", timeout=3)

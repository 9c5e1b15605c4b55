"""The operator's side of a queue: reading and changing its settings (and what a change
refuses), a change in force in another process within two seconds, and the queue's
metrics served."""

from __future__ import annotations

import time

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    admin,
    get_queue,
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    wait_status,
)
from tests.support import eventually


async def test_operators_read_and_change_a_queue(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    figures = await get_queue(qclient, queue_settings, event)
    for field in (
        "event_id",
        "admit_per_minute",
        "max_active",
        "paused",
        "session_seconds",
        "mode",
        "waiting",
        "active",
        "admitted_total",
        "claim_seconds",
        "admission_margin_percent",
        "all_held",
    ):
        assert field in figures, field
    assert figures["admit_per_minute"] == queue_settings.queue_admit_per_minute
    assert figures["claim_seconds"] == queue_settings.admission_claim_seconds
    assert figures["admission_margin_percent"] == queue_settings.queue_admission_margin_percent
    assert figures["mode"] == "manual" and figures["paused"] is False
    assert figures["inventory"] == {"available": 20, "reserved": 0, "booked": 0, "total": 20}
    changed = await patch_queue(
        qclient, queue_settings, event, admit_per_minute=120, max_active=7, session_seconds=300
    )
    assert (changed["admit_per_minute"], changed["max_active"], changed["session_seconds"]) == (
        120,
        7,
        300,
    )
    assert changed["mode"] == "manual"  # untouched
    window = await patch_queue(
        qclient, queue_settings, event, claim_seconds=45, admission_margin_percent=0
    )
    assert (window["claim_seconds"], window["admission_margin_percent"]) == (45, 0)
    assert window["session_seconds"] == 300  # untouched
    auto = await patch_queue(qclient, queue_settings, event, mode="auto")
    assert auto["mode"] == "auto" and 0 < auto["effective_admit_per_minute"] <= 120
    for bad in (
        {"admit_per_minute": -1},
        {"mode": "fast"},
        {"paused": 1},
        {"nope": 1},
        [1],
        {"claim_seconds": 0},
        {"claim_seconds": "60"},
        {"claim_seconds": 86_401},
        {"admission_margin_percent": -1},
        {"admission_margin_percent": 1.5},
        {"admission_margin_percent": True},
    ):
        status, problem, _ = await call(
            qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), bad
        )
        assert (status, problem["code"]) == (400, "validation_error"), bad
    kept = await get_queue(qclient, queue_settings, event)
    assert (kept["max_active"], kept["claim_seconds"], kept["admission_margin_percent"]) == (
        7,
        45,
        0,
    )
    status, listing, _ = await call(qclient, "GET", "/admin/queues", admin(queue_settings))
    assert status == 200
    mine = [item for item in listing["items"] if item["event_id"] == event]
    assert mine and mine[0]["max_active"] == 7
    assert "booking_health" in listing


async def test_a_patch_is_in_force_in_another_process_within_two_seconds(
    qclient, queue_settings, pool
) -> None:
    other = await open_client(queue_settings)  # a second process, as far as Redis knows
    try:
        event = await queue_event(pool)
        await patch_queue(qclient, queue_settings, event, paused=True)
        started = time.monotonic()
        _, body = await join(other, queue_settings, "p2", event)
        assert body["status"] == "paused"
        await patch_queue(other, queue_settings, event, paused=False, admit_per_minute=6000)
        await wait_status(qclient, queue_settings, "p2", event, "admitted", timeout=2)
        assert time.monotonic() - started < 4
    finally:
        await other.close()


async def test_queue_metrics_are_served(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await join(qclient, queue_settings, "metered", event)
    await in_snapshot(qclient, queue_settings, event)

    async def scrape() -> str:
        async with qclient.get("/metrics") as resp:
            return await resp.text()

    text = await eventually(
        scrape, lambda t: f'ticketing_queue_length{{event_id="{event}"' in t, 5, "queue gauges"
    )
    for name in (
        "ticketing_queue_joins_total",
        "ticketing_queue_admissions_total",
        "ticketing_queue_active_sessions",
        "ticketing_queue_open_sockets",
        "ticketing_queue_push_lag_seconds",
        "ticketing_queue_estimated_wait_seconds",
        "ticketing_queue_actual_wait_seconds",
        "ticketing_queue_admit_rate_per_minute",
    ):
        assert name in text, name

"""The gauges the alert rules (deploy/prometheus/alerts.yml) need to tell a stalled queue
from a paused, full or sold-out one: paused, max_active and the seats left, served on the
waitingroom's /metrics and following what an operator sets."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.queue.support import SEATS, in_snapshot, patch_queue, queue_event
from tests.support import eventually


async def gauges(client: TestClient, event: int) -> dict[tuple[str, str], float]:
    """This event's samples on /metrics, by name and status label ("" when it has none)."""
    async with client.get("/metrics") as resp:
        text = await resp.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("event_id") == str(event):
                found[(sample.name, sample.labels.get("status", ""))] = sample.value
    return found


async def test_paused_max_active_and_seats_follow_the_queue(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    total = sum(section.capacity for section in SEATS)

    async def probe() -> dict[tuple[str, str], float]:
        return await gauges(qclient, event)

    before = await eventually(
        probe,
        lambda g: ("ticketing_queue_paused", "") in g and ("ticketing_queue_seats", "booked") in g,
        5,
        "queue gauges",
    )
    # The control: not paused until the operator pauses it.
    assert before[("ticketing_queue_paused", "")] == 0
    assert before[("ticketing_queue_seats", "available")] == total
    assert before[("ticketing_queue_seats", "reserved")] == 0
    assert before[("ticketing_queue_seats", "booked")] == 0

    await patch_queue(qclient, queue_settings, event, paused=True, max_active=7)
    after = await eventually(
        probe, lambda g: g.get(("ticketing_queue_paused", "")) == 1, 5, "paused gauge at 1"
    )
    assert after[("ticketing_queue_max_active", "")] == 7

    await patch_queue(qclient, queue_settings, event, paused=False)
    await eventually(
        probe, lambda g: g.get(("ticketing_queue_paused", "")) == 0, 5, "paused gauge back at 0"
    )

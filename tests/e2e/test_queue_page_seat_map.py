"""The seat map when its loads overlap, in real headless Chromium against the whole stack.

Admission loads the first section's seats while the fan may already be choosing another,
and a refused reserve reloads the map: loads overlap, and their answers can come back in
either order. Here the first load's answer is held back until the fan has chosen the
other section and seen its seats; then it is let through. The map must still show the
section the fan chose.

The control is the page before the change (checked by hand, 2026-12-06): the late answer
replaced the chosen section's seats with the other section's. The test also asserts that
the held answer did reach the page, so it cannot pass because the race never happened."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.e2e.browser import CHROMIUM
from tests.e2e.stack import Stack, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]

SEAT_LOADS = re.compile(r".*/events/\d+/tickets\?.*")
PRICES = {"Floor": "55.00", "Balcony": "30.00"}  # tests/e2e/stack.py's queue_event


@pytest.mark.timeout(120)
def test_a_late_answer_for_a_section_the_fan_left_does_not_replace_the_one_they_chose(
    stack: Stack, admin: str, pages
):
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH",
        f"/admin/queues/{event_id}",
        {"paused": False, "admit_per_minute": 600, "mode": "manual"},
        token=admin,
    )
    assert status == 200, body

    page = pages["open"]("seat-map")
    held: list[object] = []  # the first seat load, answered only when the test lets it

    def hold_the_first(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(SEAT_LOADS, hold_the_first)
    answered: list[str] = []
    page.on("response", lambda r: answered.append(r.url) if SEAT_LOADS.match(r.url) else None)

    page.goto(f"{stack.base}/queue/{event_id}?user=seat-map-{RUN_ID}")
    page.wait_for_selector("#seats:not([hidden])", timeout=30_000)
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "the page loaded no seats on admission"
        page.wait_for_timeout(100)
    first_url: str = held[0].request.url  # type: ignore[attr-defined]
    first = re.search(r"section=(\w+)", first_url).group(1)  # type: ignore[union-attr]
    chosen = next(s for s in PRICES if s != first)

    page.select_option("#pick-section", chosen)
    seats = page.locator("#seat-map .seat")
    expect(seats.first).to_have_attribute("aria-label", re.compile(PRICES[chosen]))

    held[0].continue_()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while first_url not in answered:
        assert time.monotonic() < deadline, "the held seat load never reached the page"
        page.wait_for_timeout(100)
    page.wait_for_timeout(500)  # time for the late answer to be drawn, if it were

    labels = seats.evaluate_all("buttons => buttons.map(b => b.getAttribute('aria-label'))")
    assert labels and all(PRICES[chosen] in label for label in labels), labels
    assert page.input_value("#pick-section") == chosen

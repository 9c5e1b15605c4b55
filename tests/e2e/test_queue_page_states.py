"""The fans' queue page while inventory decides, in real headless Chromium against the
whole stack: every seat left in another fan's hold (the page says so, the fan keeps the
place) until a hold is released and the fan is let in; and a sell-out, told at once."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.browser import CHROMIUM
from tests.e2e.stack import Stack, dev_token, hold_every_seat, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]

ALL_HELD_WORDS = "every remaining seat is in another fan's cart; some may come back"


def _open_queue(stack: Stack, admin: str) -> int:
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH",
        f"/admin/queues/{event_id}",
        {
            "admit_per_minute": 6000,
            "max_active": 50,
            "mode": "manual",
            "paused": False,
        },
        token=admin,
    )
    assert status == 200, body
    return event_id


@pytest.mark.timeout(180)
def test_the_page_says_every_seat_is_in_a_cart_and_lets_the_fan_in_when_one_comes_back(
    stack: Stack, pages
):
    admin = dev_token(stack, f"held-ops-{RUN_ID}", ["admin"])
    event_id = _open_queue(stack, admin)
    holds = hold_every_seat(stack, event_id, "carts")
    fan = pages["open"]("held-fan")
    fan.goto(f"{stack.base}/queue/{event_id}?user=held-fan-{RUN_ID}")
    fan.wait_for_selector("#queue:not([hidden])")
    expect(fan.locator("#queue-state")).to_contain_text(
        ALL_HELD_WORDS, ignore_case=True, timeout=10_000
    )
    expect(fan.locator("#position")).to_have_text("#1")
    # A hold released: seats are back, and the fan next in line is let in to choose.
    token, hold_id = holds[0]
    status, _, _ = stack.request("DELETE", f"/booking/holds/{hold_id}", token=token)
    assert status == 204
    expect(fan.locator("#seats")).to_be_visible(timeout=10_000)


@pytest.mark.timeout(180)
def test_the_page_tells_a_sell_out_as_the_last_seat_is_paid(stack: Stack, pages):
    admin = dev_token(stack, f"sold-ops-{RUN_ID}", ["admin"])
    event_id = _open_queue(stack, admin)
    holds = hold_every_seat(stack, event_id, "payers")
    fan = pages["open"]("sold-fan")
    fan.goto(f"{stack.base}/queue/{event_id}?user=sold-fan-{RUN_ID}")
    expect(fan.locator("#queue-state")).to_contain_text(
        ALL_HELD_WORDS, ignore_case=True, timeout=10_000
    )
    for token, hold_id in holds:
        status, _, booking = stack.request(
            "POST",
            "/booking/confirm",
            {"hold_id": hold_id, "payment_method": "pm_card_visa"},
            token=token,
        )
        assert status == 201, booking
    expect(fan.locator("#queue-state")).to_contain_text("Sold out", timeout=2_000)

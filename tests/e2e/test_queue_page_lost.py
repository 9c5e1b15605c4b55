"""The queue page when Redis lost the queue, in real headless Chromium against the whole
stack: the socket says ``lost`` and the page joins again with its stored queue ticket by
itself, nothing to click, and gets its old place back ahead of a fan who joined the new
line first. The control that shows the race is real: that fan, back before the page, is
first in the new line until the page's ticket puts the page's fan in front."""

from __future__ import annotations

import shutil
import time

import pytest
from redis import Redis

from tests.e2e.browser import CHROMIUM
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]


def _lose_the_queue(stack: Stack, event_id: int) -> None:
    """What a Redis restart without its data does to this event's queue."""
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    prefix = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event_id}}}:"
    try:
        keys = list(redis.scan_iter(match=prefix + "*", count=1000))
        assert len(keys) >= 2, keys
        redis.delete(*keys)
    finally:
        redis.close()


@pytest.mark.timeout(180)
def test_the_page_gets_its_place_back_by_itself_when_the_queue_was_lost(
    stack: Stack, admin: str, pages
):
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin
    )
    assert status == 200, body
    user = f"lost-page-{RUN_ID}"
    page = pages["open"]("lost-page")
    page.goto(f"{stack.base}/queue/{event_id}?user={user}")
    expect(page.locator("#position")).to_have_text("#1", timeout=10_000)
    later = dev_token(stack, f"lost-later-{RUN_ID}", [])
    status, _, behind = stack.request("POST", f"/queue/{event_id}/join", token=later)
    assert (status, behind["position"]) == (200, 2), behind

    _lose_the_queue(stack, event_id)
    # Back at once, before the page has heard: first in the new line, without a ticket.
    status, _, first = stack.request("POST", f"/queue/{event_id}/join", token=later)
    assert (status, first["position"]) == (200, 1), first

    # The page hears "lost" and joins again with its ticket: its fan is first again, the
    # other fan second (a join without the ticket would have put the page behind them).
    def later_position() -> int:
        status, _, answer = stack.request("GET", f"/queue/{event_id}/status", token=later)
        assert status == 200, answer
        return int(answer["position"])

    deadline = time.monotonic() + 15
    while later_position() != 2:
        assert time.monotonic() < deadline, "the page never came back ahead"
        time.sleep(0.75)  # within the per-fan limit (120 a minute)
    expect(page.locator("#position")).to_have_text("#1", timeout=5_000)
    expect(page.get_by_role("button", name="Rejoin the line")).to_have_count(0)

"""The queue page while its live socket is slow to open, in real headless Chromium against
the whole stack. The queue drops a fan who neither polls nor holds a socket for a minute
(TICKETING_QUEUE_ABANDON_SECONDS), and a socket can take that long to open while the
servers are busy or a Redis failover holds its handshake: a full-size cluster chaos run
(bench/chaos_cluster.py) lost 296 fans to that, who had joined just before the Redis
primary was killed. Here the socket's ticket request never gets an answer: the page polls
its status meanwhile, from 5 s after it asked, and stops once a socket opens.

The control is the page before the change (checked by hand): with the ticket request
hanging it made no status request at all."""

from __future__ import annotations

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


@pytest.mark.timeout(120)
def test_the_page_polls_while_its_socket_is_slow_to_open(stack: Stack, admin: str, pages):
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin
    )
    assert status == 200, body
    page = pages["open"]("slow-socket")
    held: list[object] = []  # ticket requests left unanswered until the unroute
    page.route("**/ws-ticket", lambda route: held.append(route))
    polls: list[float] = []
    page.on(
        "request",
        lambda request: polls.append(time.monotonic()) if "/status" in request.url else None,
    )

    page.goto(f"{stack.base}/queue/{event_id}?user=slow-socket-{RUN_ID}")
    expect(page.locator("#position")).to_have_text("#1", timeout=10_000)
    asked = time.monotonic()
    deadline = asked + 20
    while len(polls) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert held, "the page never asked for a socket"
    assert len(polls) >= 2, f"{len(polls)} status polls in 20 s while the socket was not open"
    assert polls[0] - asked >= 3, "polled before the socket had its time to open"

    # The ticket answered at last (unrouting lets the held requests through): the socket
    # opens and the polling stops.
    page.unroute("**/ws-ticket")
    expect(page.locator("#live")).to_have_text("Live", timeout=15_000)
    page.wait_for_timeout(500)
    settled = len(polls)
    page.wait_for_timeout(7_000)
    assert len(polls) == settled, "still polling with the socket open"

"""One person, one place in real headless Chromium against the whole stack (gateway
included): the console shows an event's clusters and sets its rule from the card's form;
a fan whose account is in a cluster is moved to the back of the line under back_of_line,
and their queue page says why."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.browser import CHROMIUM, PHONE
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]


@pytest.mark.timeout(180)
def test_the_console_shows_clusters_sets_the_rule_and_the_moved_fan_is_told(
    stack: Stack, pages
) -> None:
    ops_user = f"signals-ops-{RUN_ID}"
    admin = dev_token(stack, ops_user, ["admin"])
    event_id = queue_event(stack, admin)["id"]
    path = f"/admin/queues/{event_id}"
    status, _, body = stack.request(
        "PATCH", path, {"paused": True, "cluster_threshold": 1}, token=admin
    )
    assert status == 200, body
    # Two accounts from one block (a load balancer in front names them) and one browser,
    # one from another.
    for user, ip in (("one", "203.0.113.30"), ("two", "203.0.113.31"), ("far", "192.0.2.30")):
        token = dev_token(stack, f"signals-{user}-{RUN_ID}", [])
        headers = {"X-Forwarded-For": ip}
        if user != "far":
            headers["Cookie"] = "tq_device=00112233445566778899aabbccddeeff"
        status, _, body = stack.request(
            "POST", f"/queue/{event_id}/join", token=token, headers=headers
        )
        assert status == 200, body

    ops = pages["open"]("signals-operator")
    ops.goto(f"{stack.base}/admin?user={ops_user}&event={event_id}")
    card = f'[data-event="{event_id}"]'
    panel = f'[data-clusters="{event_id}"]'
    row = ops.locator(f"{panel} tr[data-kind=address_block]")
    expect(row).to_contain_text("203.0.113.0/24", timeout=15_000)
    expect(row).to_contain_text(f"signals-one-{RUN_ID}")
    expect(ops.locator(f"{panel} tr[data-kind=device]")).to_contain_text(f"signals-two-{RUN_ID}")
    width = ops.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["viewport"]["width"], f"horizontal scroll: {width}px wide"
    ops.select_option(f"{card} select[name=cluster_rule]", "back_of_line")
    ops.click(f'{card} [data-action="apply"]')
    expect(ops.locator(f"{card} [data-f=result]")).to_contain_text("Saved")
    expect(ops.locator(f"{panel} [data-c=summary]")).to_contain_text("back_of_line")
    expect(ops.locator(f"{panel} [data-c=summary]")).to_contain_text("2 moved", timeout=15_000)
    status, _, figures = stack.request("GET", path, token=admin)
    assert figures["cluster_rule"] == "back_of_line", figures

    # "one" opens the queue page: their place is behind "far" now, and the page says why.
    fan_user = f"signals-one-{RUN_ID}"
    fan = pages["open"]("signals-fan")
    fan.goto(f"{stack.base}/queue/{event_id}?user={fan_user}")
    fan.wait_for_selector("#queue:not([hidden])", timeout=15_000)
    expect(fan.locator("#queue-note")).to_contain_text("moved to the back", timeout=15_000)
    position = fan.locator("#position").text_content(timeout=5_000) or ""
    assert position in ("#2", "#3"), position  # behind "far", and with "two" in either order

"""A registered presale in real headless Chromium against the whole stack (gateway
included): fans register on the queue page, the operator draws in the console, the fan
drawn a code sees it and joins with it (the page sends it), the fan without one is told
why on the page, the gateway hands the presale's joins to the waitingroom (a plain join
is refused there, never placed by the gateway), and the console counts registrations,
codes issued and redeemed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.browser import CHROMIUM, PHONE
from tests.e2e.gateway_join import _join
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]


def _fits_the_phone(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["viewport"]["width"], f"horizontal scroll: {width}px wide"


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.timeout(240)
def test_fans_register_one_is_drawn_a_code_and_joins_the_other_is_told_why(
    stack: Stack, pages
) -> None:
    ops_user = f"presale-ops-{RUN_ID}"
    admin = dev_token(stack, ops_user, ["admin"])
    event_id = queue_event(stack, admin, on_sale_in=timedelta(minutes=10))["id"]
    path = f"/admin/queues/{event_id}/presale"
    settings = {
        "registration_opens_at": _at(timedelta(hours=-1)),
        "registration_closes_at": _at(timedelta(minutes=5)),
        "general_sale_at": _at(timedelta(hours=2)),
        "codes": 1,
        "seats": 4,
    }
    status, _, made = stack.request("PUT", path, settings, token=admin)
    assert status == 201, made

    users = [f"presale-fan-{i}-{RUN_ID}" for i in range(2)]
    fans = {}
    for user in users:
        page = fans[user] = pages["open"](user)
        page.goto(f"{stack.base}/queue/{event_id}?user={user}")
        expect(page.locator("#presale-register")).to_be_visible(timeout=15_000)
        expect(page.locator("#queue-state")).to_contain_text("presale code", timeout=10_000)
        page.click("#presale-register")
        expect(page.locator("#presale-words")).to_contain_text("You are registered")

    # The gateway hands the presale's joins on: a join without a code is refused by the
    # waitingroom (no X-Queue-Join: gateway), and nobody is placed.
    status, headers, problem = _join(stack, event_id, dev_token(stack, f"plain-{RUN_ID}", []))
    assert (status, problem["code"]) == (403, "presale_code_required"), problem
    assert "X-Queue-Join" not in headers

    # Registration closes; the operator draws in the console.
    closed = {**settings, "registration_closes_at": _at(timedelta(seconds=-1))}
    assert stack.request("PUT", path, closed, token=admin)[0] == 200
    ops = pages["open"]("presale-operator")
    ops.goto(f"{stack.base}/admin?user={ops_user}&event={event_id}")
    panel = f'[data-presale="{event_id}"]'
    expect(ops.locator(f"{panel} [data-p=registrations]")).to_have_text("2", timeout=15_000)
    # Dispatched, not clicked at a point: the console lists every queue of the stack, and
    # the cards above move as their charts fill.
    ops.locator(f'{panel} [data-action="draw"]').dispatch_event("click")
    expect(ops.locator(f"{panel} [data-p=result]")).to_contain_text("Drawn")
    expect(ops.locator(f"{panel} [data-p=codes_issued]")).to_contain_text("1 of 1")

    views = {
        user: stack.request("GET", f"/queue/{event_id}/presale", token=dev_token(stack, user, []))[
            2
        ]
        for user in users
    }
    winner = next(user for user in users if views[user]["you"]["code"])
    loser = next(user for user in users if user != winner)
    # The drawn fan's page (reloaded) shows the code and joins the pre-queue with it.
    fans[winner].reload()
    expect(fans[winner].locator("#presale-code")).to_contain_text(views[winner]["you"]["code"])
    expect(fans[winner].locator("#queue-state")).to_contain_text("pre-queue", timeout=15_000)
    # The other is told why they cannot join, on the page.
    fans[loser].reload()
    expect(fans[loser].locator("#presale-words")).to_contain_text(
        "not drawn a presale code", timeout=15_000
    )
    expect(fans[loser].locator("#queue-state")).to_contain_text("presale code")
    for page in (*fans.values(), ops):
        _fits_the_phone(page)
    # The console counts the redeemed code.
    expect(ops.locator(f"{panel} [data-p=codes_redeemed]")).to_have_text("1", timeout=15_000)
    status, _, figures = stack.request("GET", f"/admin/queues/{event_id}", token=admin)
    assert status == 200 and figures["pre_queue"] == 1, figures

"""The queue page and the operators' console in real headless Chromium, on a phone-sized
screen, against the whole running stack (several waitingroom processes behind nginx,
booking workers, localstripe).

Debian's chromium, driven by Playwright (``playwright install`` cannot fetch browsers here;
deploy/setup.sh installs chromium). A fan waits behind three others while the queue is
paused; the operator resumes it from the console; the fan sees the position fall, is
admitted, picks two seats, has a card declined (and is told so in words), pays with
another and sees the booking, which the API confirms.
"""

from __future__ import annotations

import re
import shutil
import threading
import time

import pytest

from tests.e2e.browser import CHROMIUM, PHONE
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID

playwright_api = pytest.importorskip("playwright.sync_api")
# Locator assertions, not wait_for_function: the pages' Content-Security-Policy forbids the
# eval that a string predicate needs, and the test runs under the same policy as fans.
expect = playwright_api.expect

ADMIT_PER_MINUTE = 30  # one fan every 2 s: slow enough to watch the position fall
FANS_AHEAD = 3

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
    pytest.mark.slow,
]


class Listening:
    """Fans ahead of ours who keep polling their status, as a fan with the page open does
    (a fan who stops listening loses the place)."""

    def __init__(self, stack: Stack, event_id: int, tokens: list[str]) -> None:
        self.stack, self.event_id, self.tokens = stack, event_id, tokens
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(2):
            for token in self.tokens:
                self.stack.request("GET", f"/queue/{self.event_id}/status", token=token)

    def __enter__(self) -> Listening:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def _fits_the_phone(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["viewport"]["width"], f"horizontal scroll: {width}px wide"


def _text(page, selector: str) -> str:
    return (page.text_content(selector) or "").strip()


def _paused_queue(stack: Stack, admin: str, admit_per_minute: int) -> tuple[int, str]:
    """A new event of the test's own whose queue is paused (manual mode, 50 sessions of
    5 minutes at most); its id and its operators' path."""
    event_id = queue_event(stack, admin)["id"]
    queue = f"/admin/queues/{event_id}"
    status, _, body = stack.request(
        "PATCH",
        queue,
        {
            "paused": True,
            "admit_per_minute": admit_per_minute,
            "max_active": 50,
            "session_seconds": 300,
            "mode": "manual",
        },
        token=admin,
    )
    assert status == 200, body
    return event_id, queue


@pytest.mark.timeout(300)
def test_a_fan_waits_is_admitted_picks_seats_and_pays(stack: Stack, pages):
    admin = dev_token(stack, f"ops-{RUN_ID}", ["admin"])
    event_id, queue = _paused_queue(stack, admin, admit_per_minute=600)

    ahead = [dev_token(stack, f"early-{i}-{RUN_ID}", []) for i in range(FANS_AHEAD)]
    for token in ahead:
        status, _, joined = stack.request("POST", f"/queue/{event_id}/join", token=token)
        assert status == 200 and joined["status"] in ("paused", "waiting"), joined

    fan_user = f"browser-fan-{RUN_ID}"
    fan = pages["open"]("fan")
    console_errors: list[str] = []
    # The browser reports every 4xx as a failed resource; the 402 below is expected.
    fan.on(
        "console",
        lambda m: (
            console_errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    fan.on("pageerror", lambda exc: console_errors.append(str(exc)))
    sockets: list[str] = []
    fan.on("websocket", lambda ws: sockets.append(ws.url))

    with Listening(stack, event_id, ahead):
        fan.goto(f"{stack.base}/queue/{event_id}?user={fan_user}")
        fan.wait_for_selector("#queue:not([hidden])")
        expect(fan.locator("#position")).to_have_text("#4", timeout=15_000)
        # Live over a websocket opened with a single-use ticket: no token in its URL.
        expect(fan.locator("#live")).to_have_text("Live", timeout=15_000)
        assert sockets, "the page opened no websocket"
        assert all("?ticket=" in url and "token=" not in url for url in sockets), sockets
        assert _text(fan, "#event-name") == "Queue Night"
        assert _text(fan, "#ahead") == str(FANS_AHEAD)
        assert "paused" in _text(fan, "#queue-state")
        assert _text(fan, "#who").endswith(fan_user)
        _fits_the_phone(fan)

        # The operator sees the line in the console and lets it move, slowly, from there.
        ops = pages["open"]("operator")
        ops.goto(f"{stack.base}/admin?user=ops-{RUN_ID}&event={event_id}")
        card = f'[data-event="{event_id}"]'
        ops.wait_for_selector(card)
        expect(ops.locator(f"{card} [data-f=waiting]")).to_have_text("4", timeout=15_000)
        assert "paused" in _text(ops, f"{card} [data-f=state]")
        assert _text(ops, f"{card} [data-f=available]").startswith("18")  # 18 seats, none sold
        _fits_the_phone(ops)
        ops.fill(f"{card} input[name=admit_per_minute]", str(ADMIT_PER_MINUTE))
        ops.fill(f"{card} input[name=claim_seconds]", "240")
        ops.fill(f"{card} input[name=admission_margin_percent]", "25")
        ops.click(f'{card} [data-action="apply"]')
        expect(ops.locator(f"{card} [data-f=result]")).to_contain_text("Saved")
        ops.click(f'{card} [data-action="pause"]')  # "Resume admission"
        expect(ops.locator(f"{card} [data-f=state]")).to_have_text("admitting")
        _, _, config = stack.request("GET", queue, token=admin)
        assert (config["paused"], config["admit_per_minute"]) == (False, ADMIT_PER_MINUTE)
        assert (config["claim_seconds"], config["admission_margin_percent"]) == (240, 25)

        # The fan watches the place fall, live, until it is their turn.
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while fan.is_hidden("#seats"):
            assert time.monotonic() < deadline, f"not admitted; positions seen: {seen}"
            position = _text(fan, "#position")
            # The page shows an en dash until it knows the position.
            if position and position != "–" and (not seen or seen[-1] != position):  # noqa: RUF001
                seen.append(position)
            time.sleep(0.1)
    # From #4 (seen above, while paused) down, one place at a time as the fans ahead go in.
    numbers = [int(p.lstrip("#")) for p in seen]
    assert len(numbers) >= 2 and numbers == sorted(numbers, reverse=True), seen
    assert numbers[0] <= 4 and numbers[-1] < numbers[0], seen

    # Admitted: choose two seats on the floor.
    assert "Your turn lasts" in _text(fan, "#session-left")
    fan.select_option("#pick-section", "Floor")
    fan.wait_for_selector("#seat-map .seat")
    _fits_the_phone(fan)
    # Locators, not element handles: the map may be redrawn between clicks (a newer load of
    # the section), and a pick must survive that.
    seats = fan.locator("#seat-map .seat")
    seats.nth(0).click()
    seats.nth(1).click()
    assert "2 seats" in _text(fan, "#picked")
    fan.click("#reserve-picked")
    fan.wait_for_selector("#checkout:not([hidden])")
    assert len(fan.query_selector_all("#hold-tickets li")) == 2
    assert "held for" in _text(fan, "#hold-left")
    _fits_the_phone(fan)

    # A declined card is explained in words, and the seats stay held for another try.
    fan.fill("#card-name", "Pat Fan")
    fan.select_option("#card", "pm_card_chargeCustomerFail")
    fan.click("#pay")
    expect(fan.locator("#notice")).to_contain_text("declined")
    assert fan.is_visible("#checkout")
    fan.select_option("#card", "pm_card_visa")
    fan.click("#pay")
    fan.wait_for_selector("#done:not([hidden])", timeout=20_000)
    booking_id = _text(fan, "#booking-id")
    _fits_the_phone(fan)

    token = dev_token(stack, fan_user, [])
    status, _, booking = stack.request("GET", f"/bookings/{booking_id}", token=token)
    assert status == 200, booking
    assert booking["status"] == "confirmed" and len(booking["tickets"]) == 2
    assert {t["seat"]["section"] for t in booking["tickets"]} == {"Floor"}
    assert _text(fan, "#booking-total") and len(fan.query_selector_all("#booking-tickets li")) == 2

    # The console counts the admissions, and pausing from it takes effect.
    admitted = ops.locator(f"{card} [data-f=admitted_total]")
    deadline = time.monotonic() + 15
    while int(re.sub(r"\D", "", admitted.text_content() or "") or 0) < 4:
        assert time.monotonic() < deadline, admitted.text_content()
        time.sleep(0.2)
    ops.click(f'{card} [data-action="pause"]')  # "Pause admission"
    expect(ops.locator(f"{card} [data-f=state]")).to_have_text("paused")
    _, _, config = stack.request("GET", queue, token=admin)
    assert config["paused"] is True
    late = dev_token(stack, f"late-{RUN_ID}", [])
    status, _, joined = stack.request("POST", f"/queue/{event_id}/join", token=late)
    assert status == 200 and joined["status"] == "paused", joined

    assert not console_errors, console_errors


@pytest.mark.timeout(180)
def test_without_a_websocket_the_page_follows_the_line_by_polling(stack: Stack, pages):
    admin = dev_token(stack, f"ops-{RUN_ID}", ["admin"])
    event_id, queue = _paused_queue(stack, admin, admit_per_minute=60)
    first = dev_token(stack, f"first-{RUN_ID}", [])
    status, _, joined = stack.request("POST", f"/queue/{event_id}/join", token=first)
    assert status == 200, joined

    fan = pages["open"]("polling-fan")
    # Every websocket this page opens is closed at once, as by a proxy that refuses them.
    fan.route_web_socket(re.compile(r".*/ws\?.*"), lambda ws: ws.close())
    with Listening(stack, event_id, [first]):
        fan.goto(f"{stack.base}/queue/{event_id}?user=polling-fan-{RUN_ID}")
        expect(fan.locator("#position")).to_have_text("#2", timeout=15_000)
        expect(fan.locator("#live")).to_contain_text("checking every few seconds")
        status, _, body = stack.request("PATCH", queue, {"paused": False}, token=admin)
        assert status == 200, body
        expect(fan.locator("#seats")).to_be_visible(timeout=30_000)
    assert "Your turn lasts" in _text(fan, "#session-left")


def _path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def _accent_pixels(png: bytes) -> int:
    """Pixels of the charts' line colour (--accent, #0b5cad) in a screenshot."""
    import io

    from PIL import Image

    raw = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    near = lambda value, want: abs(value - want) < 40  # noqa: E731
    return sum(
        1
        for i in range(0, len(raw), 3)
        if near(raw[i], 11) and near(raw[i + 1], 92) and near(raw[i + 2], 173)
    )


def _in_view_until(charts, value, text: str, seconds: float) -> None:
    """Until ``value`` reads ``text``, the charts kept in view as an operator watching them
    would: the console moves the busiest queues first after each poll, and with the other
    tests' queues in the stack ours may move off screen, where its charts are not fetched."""
    deadline = time.monotonic() + seconds
    while True:
        charts.scroll_into_view_if_needed()
        try:
            expect(value).to_have_text(text, timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.timeout(180)
def test_the_console_charts_each_queues_last_minutes(stack: Stack, pages):
    admin = dev_token(stack, f"ops-{RUN_ID}", ["admin"])
    event_id, queue = _paused_queue(stack, admin, admit_per_minute=600)
    fans = [dev_token(stack, f"charted-{i}-{RUN_ID}", []) for i in range(4)]
    for token in fans:
        status, _, joined = stack.request("POST", f"/queue/{event_id}/join", token=token)
        assert status == 200, joined

    ops = pages["open"]("charts")
    errors: list[str] = []
    ops.on("pageerror", lambda exc: errors.append(str(exc)))
    card = f'[data-event="{event_id}"]'
    chart = lambda key: f'{card} [data-chart="{key}"]'  # noqa: E731
    with Listening(stack, event_id, fans):
        ops.goto(f"{stack.base}/admin?user=ops-{RUN_ID}&event={event_id}")
        # Charts off screen are not fetched (a console may list many queues): look at ours.
        charts = ops.locator(f"{card} [data-f=charts]")
        _in_view_until(charts, ops.locator(f"{chart('waiting')} [data-now]"), "4", 15)
        expect(ops.locator(f"{chart('left')} [data-now]")).to_have_text("18")

        # Let them in; three seats go into carts, two are paid for.
        status, _, body = stack.request("PATCH", queue, {"paused": False}, token=admin)
        assert status == 200, body
        holds = []
        for token, seats in zip(fans[:2], (2, 1), strict=False):
            deadline = time.monotonic() + 20
            while True:
                _, _, me = stack.request("GET", f"/queue/{event_id}/status", token=token)
                if me.get("status") == "admitted":
                    break
                assert time.monotonic() < deadline, me
                time.sleep(0.2)
            status, _, hold = stack.request(
                "POST",
                "/booking/reserve",
                {"event_id": event_id, "quantity": seats},
                token=token,
                headers={"X-Admission-Token": me["admission_token"]},
            )
            assert status == 201, hold
            holds.append((token, hold))
        status, _, booking = stack.request(
            "POST",
            "/booking/confirm",
            {"hold_id": holds[0][1]["hold_id"], "payment_method": "pm_card_visa"},
            token=holds[0][0],
        )
        assert status == 201, booking

        _in_view_until(charts, ops.locator(f"{chart('waiting')} [data-now]"), "0", 20)
        expect(ops.locator(f"{chart('left')} [data-now]")).to_have_text("15", timeout=20_000)
        expect(ops.locator(f"{chart('left')} [data-also]")).to_have_text(
            "in carts 1", timeout=20_000
        )
        expect(ops.locator(f"{chart('active')} [data-now]")).to_have_text("3", timeout=10_000)
        expect(ops.locator(f"{chart('admission')} [data-also]")).to_have_text("in force 600")

    # The lines are drawn from the samples: the waiting line falls from 4 to 0 (SVG y grows
    # downwards), seats held and sold rose above their baselines at some point.
    def points(key: str) -> list[tuple[float, float]]:
        d = ops.get_attribute(f"{chart(key)} path.line[data-line='0']", "d") or ""
        return _path_points(d)

    waiting = points("waiting")
    _, _, series = stack.request("GET", f"{queue}/series", token=admin)
    # Every sample (one a second) is a point, but for those since the last poll (2 s ago).
    assert len(series["samples"]) - 5 <= len(waiting) <= len(series["samples"]), waiting
    # 4 fans, then none: some point stands above the last (SVG's y grows downwards).
    assert len(waiting) >= 3 and min(y for _, y in waiting) < waiting[-1][1] - 5, waiting
    assert waiting == sorted(waiting)  # time runs left to right
    for key in ("held", "sold"):
        baseline = float(ops.get_attribute(f"{chart(key)} line.grid >> nth=0", "y1") or 0)
        line = points(key)
        assert line and min(y for _, y in line) < baseline - 5, (key, baseline, line)
    ticks = ops.locator(f"{chart('waiting')} text.tick").all_text_contents()
    assert {"0", "4", "now"} <= set(ticks) and ticks[3].startswith("−"), ticks  # noqa: RUF001 - minus sign
    # And they are on screen: the held chart shows its line's colour.
    assert _accent_pixels(ops.locator(chart("held")).screenshot()) > 20
    _fits_the_phone(ops)
    ops.locator(card).screenshot(path=str(stack.workdir / "queue-charts.png"))
    assert not errors, errors

"""One person, one place through the gateway, in the whole stack as `make run` starts it:
while an event's cluster_rule is off the gateway answers joins itself and records each
placed fan's address block (the client a trusted proxy names) and device cookie as the
waitingroom does, setting the cookie on a browser without one; while the rule is on it
hands every join of the event to the waitingroom, which applies it and says why."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.gateway_join import GATEWAY, _gateway_metrics, _metric, _wait_for_gateway
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID

DEVICE = "fedcba9876543210fedcba9876543210"


def _join_from(
    stack: Stack, event: int, user: str, ip: str, device: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"X-Forwarded-For": ip}
    if device is not None:
        headers["Cookie"] = f"tq_device={device}"
    token = dev_token(stack, f"{user}-{RUN_ID}", [])
    return stack.request("POST", f"/queue/{event}/join", token=token, headers=headers)


def _clusters(stack: Stack, admin: str, event: int) -> dict[tuple[str, str], int]:
    status, _, body = stack.request("GET", f"/admin/queues/{event}/clusters", token=admin)
    assert status == 200, body
    return {(c["kind"], c["key"]): c["accounts"] for c in body["clusters"]}


def test_the_gateway_records_signals_while_the_rule_is_off_and_hands_joins_on_while_on(
    stack: Stack, admin: str
):
    event = queue_event(stack, admin)["id"]
    path = f"/admin/queues/{event}"
    assert stack.request("PATCH", path, {"paused": True}, token=admin)[0] == 200
    _wait_for_gateway(stack, event)
    assert stack.request("PATCH", path, {"cluster_threshold": 1}, token=admin)[0] == 200

    status, headers, body = _join_from(stack, event, "sig-a", "203.0.113.21")
    assert (status, headers.get("X-Queue-Join")) == (200, GATEWAY), body
    cookie = headers.get("Set-Cookie", "")
    assert cookie.startswith("tq_device=") and "HttpOnly" in cookie and "Path=/queue/" in cookie
    for user, ip in (("sig-b", "203.0.113.99"), ("sig-c", "2001:db8:5:1::7")):
        status, headers, body = _join_from(stack, event, user, ip, DEVICE)
        assert (status, headers.get("X-Queue-Join")) == (200, GATEWAY), body
        assert "Set-Cookie" not in headers
    status, headers, _ = _join_from(stack, event, "sig-d", "2001:db8:5:ffff::1", DEVICE)
    assert (status, headers.get("X-Queue-Join")) == (200, GATEWAY)
    # The same keys as the waitingroom's (tests/integration/queue/test_signals.py): the /24,
    # the IPv6 /48 and the device, each of more than K=1 accounts, each account once. Each
    # nginx worker writes the signals it gathered every 0.1 s, not on the join's round trip.
    expected = {
        ("address_block", "203.0.113.0/24"): 2,
        ("address_block", "2001:db8:5::/48"): 2,
    }
    deadline = time.monotonic() + 3
    while True:
        found = _clusters(stack, admin, event)
        devices = sorted(n for (kind, _), n in found.items() if kind == "device")
        settled = devices == [3] and all(found.get(k) == n for k, n in expected.items())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {k: found.get(k) for k in expected} == expected, found
    assert devices == [3], found

    before = _gateway_metrics(stack)
    assert stack.request("PATCH", path, {"cluster_rule": "harder_challenge"}, token=admin)[0] == 200
    deadline = time.monotonic() + 5  # every worker reads the settings again within a second
    while time.monotonic() < deadline:
        status, headers, problem = _join_from(stack, event, "sig-e", "203.0.113.50")
        if "X-Queue-Join" not in headers:
            break
        time.sleep(0.1)
    # The waitingroom's answer: the third account of the /24 needs a harder challenge.
    assert (status, problem["code"], problem["cluster"]) == (
        403,
        "challenge_required",
        "address_block",
    ), problem
    # Not a wait for something to show: the first worker to hand it on read the settings;
    # each other reads them within its cache's bound (a second), which no answer tells.
    time.sleep(1.1)
    for n in range(5):  # not one worker still answering by itself
        status, headers, _ = _join_from(stack, event, f"sig-f{n}", f"198.51.{n}.1")
        assert status == 200 and "X-Queue-Join" not in headers
    name = "ticketing_gateway_queue_join_fallbacks_total"
    after = _gateway_metrics(stack)
    assert _metric(after, name, reason="cluster") >= _metric(before, name, reason="cluster") + 6

    # Off again: the gateway answers once more.
    assert stack.request("PATCH", path, {"cluster_rule": "off"}, token=admin)[0] == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, headers, _ = _join_from(stack, event, f"sig-g{time.monotonic()}", "192.0.2.8")
        if headers.get("X-Queue-Join") == GATEWAY:
            break
        time.sleep(0.1)
    assert (status, headers.get("X-Queue-Join")) == (200, GATEWAY)

"""The gateway's joins of one event share PLACE calls (deploy/lua/queue_join.lua ``place``):
while a worker's call for the event is under way, the joins that arrive wait and go
together in the next. Many fans racing through the real gateway and Redis must each be
placed once, at a place of their own, and told their own position; sent one after another,
each join is a call of its own (the control: the batching the race shows is the race's)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.gateway_join import (
    GATEWAY,
    _claims,
    _gateway_metrics,
    _join,
    _metric,
    _settings,
)
from tests.e2e.stack import Stack
from tests.servers import RUN_ID
from ticketing.auth import issue_dev_token

FANS = 120
CALLS, JOINS = (
    "ticketing_gateway_queue_place_calls_total",
    "ticketing_gateway_queue_place_joins_total",
)


def _counts(stack: Stack) -> tuple[float, float]:
    text = _gateway_metrics(stack)
    return _metric(text, CALLS), _metric(text, JOINS)


def test_fans_racing_through_the_gateway_are_each_placed_once_in_shared_calls(
    stack: Stack, on_sale: int
) -> None:
    event_id = on_sale
    settings = _settings(stack)  # tokens minted here: /auth/dev-token limits its callers
    fans = [f"gw-batch-{i}-{RUN_ID}" for i in range(FANS)]
    tokens = [issue_dev_token(settings, fan, [])["access_token"] for fan in fans]
    start = threading.Barrier(FANS)

    def join(token: str) -> tuple[int, dict[str, str], object]:
        start.wait()
        return _join(stack, event_id, token)

    calls_before, joins_before = _counts(stack)
    with ThreadPoolExecutor(FANS) as pool:
        answers = list(pool.map(join, tokens))
    calls, joins = _counts(stack)

    assert [a[0] for a in answers] == [200] * FANS, [a for a in answers if a[0] != 200][:3]
    assert all(a[1].get("X-Queue-Join") == GATEWAY for a in answers)
    bodies = [a[2] for a in answers]
    assert all(isinstance(b, dict) and b["status"] == "paused" for b in bodies), bodies[:3]
    # Each fan a position of their own, together a stretch of the line (behind the probes
    # that waited for the gateway); each ticket the fan's own.
    positions = sorted(b["position"] for b in bodies)  # type: ignore[index]
    assert positions == list(range(positions[0], positions[0] + FANS))
    claims = [_claims(b["queue_ticket"]) for b in bodies]  # type: ignore[index]
    assert [c["sub"] for c in claims] == fans
    assert len({c["place"] for c in claims}) == FANS
    # Every join went in a PLACE call, and calls were shared: the race was real.
    assert joins - joins_before == FANS
    assert 1 <= calls - calls_before < FANS, (calls - calls_before, FANS)


def test_control_joins_one_after_another_make_a_call_each(stack: Stack, on_sale: int) -> None:
    event_id = on_sale
    settings = _settings(stack)
    calls_before, joins_before = _counts(stack)
    positions = []
    for i in range(10):
        token = issue_dev_token(settings, f"gw-batch-alone-{i}-{RUN_ID}", [])["access_token"]
        status, headers, body = _join(stack, event_id, token)
        assert (status, headers.get("X-Queue-Join")) == (200, GATEWAY), body
        positions.append(body["position"])  # type: ignore[index]
    calls, joins = _counts(stack)
    assert positions == list(range(positions[0], positions[0] + 10))
    assert (calls - calls_before, joins - joins_before) == (10, 10)

"""Queue tickets brought back to a join through the gateway, in the whole stack as `make
run` starts it: after Redis lost the queue a ticket restores the fan's place, through the
gateway or straight to a waitingroom process, in the old order; a ticket the gateway does
not take (another fan's or event's, expired, not ours, malformed) gets the waitingroom's
answer."""

from __future__ import annotations

import time

import jwt
from redis import Redis

from tests.e2e.gateway_join import (
    GATEWAY,
    _claims,
    _direct,
    _gateway_metrics,
    _join,
    _metric,
    _settings,
    _wait_for_gateway,
)
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID


def test_a_ticket_restores_the_place_when_redis_lost_the_queue_either_way(stack: Stack, admin: str):
    """Redis loses the event's queue; the fans come back with their queue tickets, some
    through the gateway, some straight to a waitingroom process: each gets their old place
    back, in the old order, as the waitingroom alone would give it."""
    event_id = queue_event(stack, admin)["id"]
    stack.request("PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin)
    _wait_for_gateway(stack, event_id)
    fans = [f"gw-lost-{i}-{RUN_ID}" for i in range(4)]
    tokens = {fan: dev_token(stack, fan, []) for fan in fans}
    tickets, before = {}, {}
    for fan in fans:
        _, headers, body = _join(stack, event_id, tokens[fan])
        assert headers.get("X-Queue-Join") == GATEWAY
        tickets[fan], before[fan] = body["queue_ticket"], body["position"]

    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    prefix = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event_id}}}:"
    try:
        lost = redis.delete(*(prefix + name for name in ("waiting", "seen", "state", "active")))
    finally:
        redis.close()
    assert lost >= 2
    stack.request("PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin)
    # Past the window (no worker shows when it re-reads): figures of a second ago no
    # longer count anyone.
    time.sleep(1.1)

    # The last fan first, through the gateway: first in line now, restored, not new.
    ways = {fans[3]: None, fans[0]: _direct(stack), fans[2]: None, fans[1]: _direct(stack)}
    for fan, base in ways.items():
        status, headers, body = _join(
            stack, event_id, tokens[fan], {"queue_ticket": tickets[fan]}, base=base
        )
        assert status == 200, body
        assert (headers.get("X-Queue-Join") == GATEWAY) == (base is None), fan
        assert (
            body["status"] == "paused"
            and _claims(body["queue_ticket"])["place"] == (_claims(tickets[fan])["place"])
        ), fan
    # Everyone back where they were relative to each other: the old order.
    after = {
        fan: stack.request("GET", f"/queue/{event_id}/status", token=tokens[fan])[2] for fan in fans
    }
    assert [after[f]["position"] for f in fans] == [1, 2, 3, 4], after
    text = _gateway_metrics(stack)
    assert (
        _metric(
            text, "ticketing_gateway_queue_joins_total", event_id=str(event_id), outcome="restored"
        )
        == 2
    )


def test_tickets_the_gateway_does_not_take_get_the_waitingroom_answer(
    stack: Stack, admin: str, on_sale: int
):
    settings = _settings(stack)
    fan, other = f"gw-tk-{RUN_ID}", f"gw-tk-other-{RUN_ID}"
    token = dev_token(stack, fan, [])
    _, _, mine = _join(stack, on_sale, token)
    _, _, theirs = _join(stack, on_sale, dev_token(stack, other, []))
    elsewhere = queue_event(stack, admin)["id"]
    _wait_for_gateway(stack, elsewhere)
    _, _, far = _join(stack, elsewhere, token)
    now = int(time.time())
    claims = _claims(mine["queue_ticket"])

    def signed(**changes: object) -> str:
        return jwt.encode({**claims, **changes}, settings.queue_ticket_secret, algorithm="HS256")

    bodies = {
        "someone else's": {"queue_ticket": theirs["queue_ticket"]},
        "another event's": {"queue_ticket": far["queue_ticket"]},
        "expired": {"queue_ticket": signed(exp=now - 1)},
        "not ours": {"queue_ticket": jwt.encode(claims, "x" * 40, algorithm="HS256")},
        "not a ticket": {"queue_ticket": "nope"},
        "empty": {"queue_ticket": ""},
        "another field": {"queue_ticket": mine["queue_ticket"], "seats": 2},
        "no object": ["queue_ticket"],
    }
    for name, body in bodies.items():
        status, headers, answer = _join(stack, on_sale, token, body)
        direct_status, _, direct = _join(stack, on_sale, token, body, base=_direct(stack))
        assert "X-Queue-Join" not in headers, name
        assert status == direct_status and status in (400, 403), (name, answer)
        assert answer["code"] == direct["code"], name
    # A ticket for nothing restorable (a sold-out place) is a plain join.
    status, headers, answer = _join(
        stack, on_sale, token, {"queue_ticket": signed(where="sold_out")}
    )
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
    assert answer["position"] == mine["position"]
    # An admitted fan's session under the line key, the one key of ours the gateway holds,
    # is what a taken gateway would forge: the waitingroom refuses it (sessions' tickets
    # are signed with a key derived from the admission secret).
    forged = {"queue_ticket": signed(where="admitted")}
    status, headers, answer = _join(stack, on_sale, token, forged)
    direct_status, _, direct = _join(stack, on_sale, token, forged, base=_direct(stack))
    assert "X-Queue-Join" not in headers
    assert (status, answer["code"]) == (direct_status, direct["code"]) == (400, "validation_error")


def test_a_ticket_restores_a_join_the_failover_lost_through_the_gateway(stack: Stack, admin: str):
    """A Redis primary killed a moment after a join: the promoted replica lacks that join
    alone, keeps the epoch, and a newcomer moves `last` on. The gateway's PLACE gives the
    fan its place back from its ticket, as the waitingroom's does
    (tests/integration/queue/test_join_and_queue_tickets.py has the control)."""
    event_id = queue_event(stack, admin)["id"]
    stack.request("PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin)
    _wait_for_gateway(stack, event_id)
    fans = [f"gw-{name}-{RUN_ID}" for name in ("first", "lost", "third", "newcomer")]
    tokens = {fan: dev_token(stack, fan, []) for fan in fans}
    tickets = {}
    for fan in fans[:3]:
        _, headers, body = _join(stack, event_id, tokens[fan])
        assert headers.get("X-Queue-Join") == GATEWAY
        tickets[fan] = body["queue_ticket"]
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    prefix = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event_id}}}:"
    try:
        assert redis.zrem(prefix + "waiting", fans[1]) == 1
        redis.zrem(prefix + "seen", fans[1])
    finally:
        redis.close()
    _, headers, _newcomer = _join(stack, event_id, tokens[fans[3]])
    assert headers.get("X-Queue-Join") == GATEWAY
    status, headers, back = _join(
        stack, event_id, tokens[fans[1]], {"queue_ticket": tickets[fans[1]]}
    )
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY, back
    assert _claims(back["queue_ticket"])["place"] == _claims(tickets[fans[1]])["place"]
    positions = [
        stack.request("GET", f"/queue/{event_id}/status", token=tokens[fan])[2]["position"]
        for fan in fans
    ]
    assert positions == sorted(positions), positions  # between "first" and "third" again

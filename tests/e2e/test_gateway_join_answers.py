"""What the gateway answers itself when a fan joins a queue (deploy/lua/queue_join.lua), in
the whole stack as `make run` starts it, set beside the waitingroom's own answer asked
directly on a waitingroom port: a plain join, a paused queue resuming and sold out, all_held
and a sell-out within a second of the last sale, the pre-queue once the commitment is on
record, and the joins counted on the gateway's own metrics port. ``X-Queue-Join: gateway``
says which of the two answered."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from redis import Redis

from tests.e2e.gateway_join import (
    GATEWAY,
    _claims,
    _direct,
    _gateway_metrics,
    _join,
    _metric,
    _payload,
    _settings,
    _wait_for_gateway,
)
from tests.e2e.stack import Stack, dev_token, hold_every_seat, queue_event
from tests.servers import RUN_ID
from tests.support import wait_until
from waitingroom.queue.ticket import read_ticket


def _timeless(ticket: str) -> str:
    """The ticket's claims as written, its times (the second it was signed) left out."""
    return re.sub(r'"(iat|exp)":\d+', '"\\1":0', _payload(ticket))


def test_the_gateway_answers_a_plain_join_as_the_waitingroom_would(stack: Stack, on_sale: int):
    # Fan ids as dev tokens allow them, a slash and a quote among them.
    fans = [f"gw-fan-{i}-{RUN_ID}" for i in range(4)] + [f"gw/fan-{RUN_ID}", f'gw"fan-{RUN_ID}']
    tokens = [dev_token(stack, fan, []) for fan in fans]
    answers = []
    for token in tokens:
        status, headers, body = _join(stack, on_sale, token)
        assert status == 200, body
        assert headers.get("X-Queue-Join") == GATEWAY
        assert headers["Content-Type"] == "application/json"
        answers.append(body)
    # First come, first served: each fan one place further back than the one before.
    positions = [a["position"] for a in answers]
    assert positions == list(range(positions[0], positions[0] + len(fans)))
    assert all(a["ahead"] == a["position"] - 1 and a["status"] == "paused" for a in answers)

    for fan, token, ours in zip(fans, tokens, answers, strict=True):
        # The same fan joining again on a waitingroom process directly: the same answer,
        # field for field, in the same order, and the same place in the ticket.
        status, headers, theirs = _join(stack, on_sale, token, base=_direct(stack))
        assert status == 200 and "X-Queue-Join" not in headers
        assert list(theirs) == list(ours)
        assert {k: v for k, v in theirs.items() if k not in ("queue_ticket", "waiting")} == {
            k: v for k, v in ours.items() if k not in ("queue_ticket", "waiting")
        }
        assert _timeless(ours["queue_ticket"]) == _timeless(theirs["queue_ticket"])
        ticket, expected = _claims(ours["queue_ticket"]), _claims(theirs["queue_ticket"])
        assert list(ticket) == list(expected)
        assert {k: ticket[k] for k in ("sub", "event_id", "where", "place", "epoch")} == {
            k: expected[k] for k in ("sub", "event_id", "where", "place", "epoch")
        }
        # The waitingroom reads the gateway's ticket as its own (signature and claims).
        where, place, epoch = read_ticket(_settings(stack), ours["queue_ticket"], fan, on_sale)
        assert (where, place, epoch) == ("waiting", expected["place"], expected["epoch"])
        # Joining again through the gateway: the same place, counted as "again".
        status, headers, again = _join(stack, on_sale, token)
        assert headers.get("X-Queue-Join") == GATEWAY and again["position"] == ours["position"]

    # The ticket brought back (the page sends it with every join): the same place.
    status, headers, restored = _join(
        stack, on_sale, tokens[0], {"queue_ticket": answers[0]["queue_ticket"]}
    )
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
    assert restored["position"] == answers[0]["position"]
    # And the fan's status, the waitingroom's, agrees with where the gateway put them.
    status, _, polled = stack.request("GET", f"/queue/{on_sale}/status", token=tokens[-1])
    assert status == 200 and polled["position"] == answers[-1]["position"]


def test_the_gateway_tells_a_paused_queue_resuming_and_sold_out_as_the_waitingroom(
    stack: Stack, admin: str
):
    event_id = queue_event(stack, admin)["id"]
    fan = dev_token(stack, f"gw-state-{RUN_ID}", [])
    _wait_for_gateway(stack, event_id)
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    prefix = stack.env["TICKETING_REDIS_PREFIX"]

    def both() -> tuple[dict, dict]:
        _, headers, ours = _join(stack, event_id, fan)
        assert headers.get("X-Queue-Join") == GATEWAY
        _, _, theirs = _join(stack, event_id, fan, base=_direct(stack))
        return ours, theirs

    for paused, expected in ((True, "paused"), (False, "waiting")):
        stack.request("PATCH", f"/admin/queues/{event_id}", {"paused": paused}, token=admin)
        # Figures are at most a second old in either's answer.
        wait_until(lambda e=expected: both()[0]["status"] == e, 5, f"the gateway to say {expected}")
        wait_until(lambda e=expected: both()[1]["status"] == e, 5, f"the waitingroom: {expected}")
    # Sold out (the waitingroom's own flag, as its inventory count sets it): no position.
    redis.hset(f"{prefix}q:{{{event_id}}}:state", "sold_out", "1")
    try:
        wait_until(lambda: both()[0]["status"] == "sold_out", 5, "the gateway to say sold_out")
        ours, theirs = both()
        assert ours["position"] is None and ours["ahead"] is None and ours["eta_seconds"] is None
        # Field by field, but for the live figures: the queue admits again since it resumed,
        # so "waiting" and the measured admission rate may each have moved between the
        # gateway's reading and the waitingroom's (each at most a second old).
        live = ("queue_ticket", "waiting", "admit_rate_per_minute")
        assert {k: v for k, v in ours.items() if k not in live} == {
            k: v for k, v in theirs.items() if k not in live
        }
        assert ours["admit_rate_per_minute"] >= 0 and theirs["admit_rate_per_minute"] >= 0
    finally:
        redis.hdel(f"{prefix}q:{{{event_id}}}:state", "sold_out")
        redis.close()


def test_the_gateway_tells_all_held_and_a_sell_out_at_once_after_the_last_sale(
    stack: Stack, admin: str
):
    """A real sale of the event's 18 seats through the gateway: while every seat left is in
    a hold the gateway tells a new fan all_held (as the waitingroom does); the moment the
    last hold is paid, a new join on either path is told sold_out, within a second (the
    front door recounts the event after the confirm, not at the next second's count)."""
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH",
        f"/admin/queues/{event_id}",
        {"admit_per_minute": 60_000, "max_active": 100, "paused": True},
        token=admin,
    )
    assert status == 200, body
    _wait_for_gateway(stack, event_id)
    # The probes leave the line: each admitted one would take two seats' worth of room.
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    try:
        key = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event_id}}}:waiting"
        probes = [m for m in redis.zrange(key, 0, -1) if m.startswith(b"gw-probe-")]
        if probes:
            redis.zrem(key, *probes)
    finally:
        redis.close()
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": False}, token=admin
    )
    assert status == 200, body
    holds = hold_every_seat(stack, event_id, "gw-buyer")

    def joined(fan: str, base: str | None = None) -> tuple[dict, dict[str, str]]:
        status, headers, body = _join(stack, event_id, dev_token(stack, fan, []), base=base)
        assert status == 200, body
        return body, headers

    # Each probe a fan of its own: one fan polling 20 times a second meets its rate limit,
    # and the fan below must still be answered twice.
    probes = iter(range(100))
    wait_until(
        lambda: joined(f"gw-held-probe-{next(probes)}-{RUN_ID}")[0]["status"] == "all_held",
        3,
        "the gateway to say all_held",
    )
    body, headers = joined(f"gw-held-{RUN_ID}")
    assert headers.get("X-Queue-Join") == GATEWAY and body["position"] is not None
    assert joined(f"gw-held-{RUN_ID}", _direct(stack))[0]["status"] == "all_held"
    for token, hold_id in holds:
        status, _, booking = stack.request(
            "POST",
            "/booking/confirm",
            {"hold_id": hold_id, "payment_method": "pm_card_visa"},
            token=token,
        )
        assert status == 201, booking
        sold_at = time.monotonic()
    late = iter(range(100))
    wait_until(
        lambda: joined(f"gw-late-{next(late)}-{RUN_ID}")[0]["status"] == "sold_out",
        1.0,
        "the gateway to say sold_out within a second",
    )
    assert time.monotonic() - sold_at < 1.0
    body, headers = joined(f"gw-late-x-{RUN_ID}")
    assert headers.get("X-Queue-Join") == GATEWAY and body["status"] == "sold_out"
    assert body["position"] is None
    assert joined(f"gw-late-y-{RUN_ID}", _direct(stack))[0]["status"] == "sold_out"
    # The fan who was in line hears it too, and nobody is admitted any more.
    assert joined(f"gw-held-{RUN_ID}")[0]["status"] == "sold_out"
    _, _, figures = stack.request("GET", f"/admin/queues/{event_id}", token=admin)
    assert (figures["sold_out"], figures["active"]) == (True, 0)


def test_the_gateway_fills_the_pre_queue_once_the_commitment_is_on_record(stack: Stack, admin: str):
    event_id = queue_event(stack, admin, on_sale_in=timedelta(hours=1))["id"]
    # The admitter commits before on-sale and records the commitment; the gateway waits
    # for that (until then the waitingroom answers, committing first).
    _wait_for_gateway(stack, event_id)
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    try:
        fair = redis.hgetall(f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event_id}}}:fair")
    finally:
        redis.close()
    assert fair[b"recorded"] == fair[b"commitment"]
    status, _, record = stack.request("GET", f"/queue/{event_id}/fairness")
    assert status == 200 and record["commitment"] == fair[b"commitment"].decode()

    for i in range(3):
        fan = f"gw-early-{i}-{RUN_ID}"
        token = dev_token(stack, fan, [])
        status, headers, ours = _join(stack, event_id, token)
        assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
        assert ours["status"] == "pre_queue" and ours["position"] is None
        _, _, theirs = _join(stack, event_id, token, base=_direct(stack))
        # "waiting" is each one's figure of at most a second ago: not compared.
        assert {k: v for k, v in ours.items() if k not in ("queue_ticket", "waiting")} == {
            k: v for k, v in theirs.items() if k not in ("queue_ticket", "waiting")
        }
        where, place, epoch = read_ticket(_settings(stack), ours["queue_ticket"], fan, event_id)
        assert where == "pre" and (place, epoch) == (
            _claims(theirs["queue_ticket"])["place"],
            _claims(theirs["queue_ticket"])["epoch"],
        )
    assert ours["waiting"] >= 3 and theirs["waiting"] >= 3


def test_the_gateway_counts_its_joins_on_its_own_metrics_port(stack: Stack, on_sale: int):
    name, labels = (
        "ticketing_gateway_queue_joins_total",
        {"event_id": str(on_sale), "outcome": "new"},
    )
    before = _metric(_gateway_metrics(stack), name, **labels)
    for i in range(3):
        token = dev_token(stack, f"gw-counted-{i}-{RUN_ID}", [])
        assert _join(stack, on_sale, token)[1].get("X-Queue-Join") == GATEWAY
    text = _gateway_metrics(stack)
    # Four nginx workers count into one shared zone: every join is in the one figure.
    assert _metric(text, name, **labels) == before + 3
    assert _metric(text, "ticketing_gateway_queue_estimated_wait_seconds_bucket", le="+Inf") == (
        _metric(text, "ticketing_gateway_queue_estimated_wait_seconds_count")
    )
    assert "# TYPE ticketing_gateway_queue_estimated_wait_seconds histogram" in text
    status, _, _ = stack.request("GET", "/metrics")  # never through the public server
    assert status == 404

"""The queue join the gateway answers itself (deploy/lua/queue_join.lua), in the whole stack
as `make run` starts it.

The gateway may answer a join only as the waitingroom would: the same body for the same
fan, a ticket the waitingroom reads back, and every case it does not answer passed on
unchanged. Each test sets the gateway's answer beside the waitingroom's own, asked
directly on a waitingroom port. ``X-Queue-Join: gateway`` says which of the two answered.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from datetime import timedelta

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from tests.e2e.stack import Stack, dev_token, hold_every_seat, queue_event
from tests.servers import RUN_ID
from tests.support import wait_until
from ticketing.auth import issue_dev_token
from ticketing.config import Settings
from waitingroom.queue.ticket import read_ticket

GATEWAY = "gateway"


def _join(
    stack: Stack,
    event_id: int | str,
    token: str | None,
    body: object = None,
    base: str | None = None,
) -> tuple[int, dict[str, str], object]:
    return stack.request("POST", f"/queue/{event_id}/join", body, token=token, base=base)


def _direct(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.waitingroom_ports[0]}"


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.env)


def _payload(ticket: str) -> str:
    payload = ticket.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def _claims(ticket: str) -> dict:
    return json.loads(_payload(ticket))


def _timeless(ticket: str) -> str:
    """The ticket's claims as written, its times (the second it was signed) left out."""
    return re.sub(r'"(iat|exp)":\d+', '"\\1":0', _payload(ticket))


def _wait_for_gateway(stack: Stack, event_id: int) -> None:
    """Until every nginx worker answers this new event's joins: each refreshes its snapshot
    of queue-enabled events every second, so a second after one has it, all have. Each
    probe is a fan of its own (one fan asking 20 times a second meets its limit)."""
    settings, probes = _settings(stack), iter(range(10_000))

    def answered() -> bool:
        token = issue_dev_token(settings, f"gw-probe-{next(probes)}-{RUN_ID}", [])
        return _join(stack, event_id, token["access_token"])[1].get("X-Queue-Join") == GATEWAY

    wait_until(answered, 15, "the gateway to answer the new event's joins")
    # Not a wait for something to show: which worker answers a probe is nginx's choice, and
    # none tells when it read the snapshot. Its cache's age bound (a second) is the deadline.
    time.sleep(1.1)


def _gateway_metrics(stack: Stack) -> str:
    port = stack.env["TICKETING_GATEWAY_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample of the gateway's metrics, read by prometheus_client's own parser (which
    also holds the Lua-written exposition to the format); 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


@pytest.fixture(scope="module")
def admin(stack: Stack) -> str:
    return dev_token(stack, f"gw-ops-{RUN_ID}", ["admin"])


@pytest.fixture(scope="module")
def on_sale(stack: Stack, admin: str) -> int:
    """An event on sale with its queue paused (nobody is admitted under the tests' feet),
    which the gateway already answers for."""
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin
    )
    assert status == 200, body
    _wait_for_gateway(stack, event_id)
    return event_id


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
        assert {k: v for k, v in ours.items() if k not in ("queue_ticket", "waiting")} == {
            k: v for k, v in theirs.items() if k not in ("queue_ticket", "waiting")
        }
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


def _token(settings: Settings, claims: dict, headers: dict | None = None) -> str:
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256", headers=headers)


def test_tokens_the_gateway_accepts_are_exactly_ones_the_waitingroom_accepts(
    stack: Stack, on_sale: int
):
    """The gateway only ever accepts: every token it does not take goes to the waitingroom,
    which answers 401 or 200 as it always has. Here each kind of token is sent both ways."""
    settings = _settings(stack)
    now = int(time.time())
    user = f"gw-token-{RUN_ID}"
    valid = issue_dev_token(settings, user, [])["access_token"]
    good_sig = valid.rpartition(".")[0]
    soon = now + 60
    # name: (token, the gateway answers it, the waitingroom accepts it)
    cases = {
        "ours": (valid, True, True),
        "expired within the leeway": (_token(settings, {"sub": user, "exp": now - 2}), True, True),
        "expired": (_token(settings, {"sub": user, "exp": now - 60}), False, False),
        "issued in the future": (
            _token(settings, {"sub": user, "exp": soon, "iat": now + 600}),
            False,
            False,
        ),
        "not yet valid": (
            _token(settings, {"sub": user, "exp": soon, "nbf": now + 600}),
            False,
            False,
        ),
        "no expiry": (_token(settings, {"sub": user}), False, False),
        "empty subject": (_token(settings, {"sub": "", "exp": soon}), False, False),
        "roles not a list": (
            _token(settings, {"sub": user, "exp": soon, "roles": "x"}),
            False,
            False,
        ),
        "roles an object": (
            _token(settings, {"sub": user, "exp": soon, "roles": {"0": "x"}}),
            False,
            False,
        ),
        "roles an empty object": (
            _token(settings, {"sub": user, "exp": soon, "roles": {}}),
            False,
            False,
        ),
        "roles": (_token(settings, {"sub": user, "exp": soon, "roles": ["fan"]}), True, True),
        "an audience": (_token(settings, {"sub": user, "exp": soon, "aud": "x"}), False, False),
        "another key": (
            jwt.encode({"sub": user, "exp": soon}, "another-secret-" * 3, algorithm="HS256"),
            False,
            False,
        ),
        "a tampered signature": (good_sig + ".AAAA" + valid.rpartition(".")[2][4:], False, False),
        "alg none": (jwt.encode({"sub": user, "exp": soon}, None, algorithm="none"), False, False),
        # Valid, but not the shape the gateway reads: the waitingroom's to accept.
        "another header": (
            _token(settings, {"sub": user, "exp": soon}, {"kid": "k1"}),
            False,
            True,
        ),
        "not a token": ("not-a-token", False, False),
    }
    for name, (token, gateway_answers, accepted) in cases.items():
        status, headers, body = _join(stack, on_sale, token)
        direct_status, _, direct_body = _join(stack, on_sale, token, base=_direct(stack))
        assert (headers.get("X-Queue-Join") == GATEWAY) == gateway_answers, name
        assert status == direct_status == (200 if accepted else 401), (name, body, direct_body)
        if not accepted:
            assert body["code"] == direct_body["code"], name


def test_the_gateway_passes_on_what_it_does_not_answer(stack: Stack, admin: str, on_sale: int):
    fan = dev_token(stack, f"gw-pass-{RUN_ID}", [])
    before = _gateway_metrics(stack)

    status, headers, body = _join(stack, on_sale, None)
    assert (status, body["code"]) == (401, "unauthorized") and "X-Queue-Join" not in headers
    status, headers, body = _join(stack, 2**40, fan)
    assert (status, body["code"]) == (404, "event_not_found") and "X-Queue-Join" not in headers
    status, headers, body = _join(stack, on_sale, fan, {"seats": 2})
    assert (status, body["code"]) == (400, "validation_error") and "X-Queue-Join" not in headers
    # Leading zeros are the same event, as the waitingroom reads the path.
    status, headers, body = _join(stack, f"000{on_sale}", fan)
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
    assert body["event_id"] == on_sale

    # Before on-sale, with the seed's commitment not on record (as in the moment after an
    # event is created, or after Redis lost it): the waitingroom commits first.
    early = queue_event(stack, admin, on_sale_in=timedelta(hours=1))["id"]
    _wait_for_gateway(stack, early)
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    fair = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{early}}}:fair"
    try:
        recorded = redis.hget(fair, "recorded")
        redis.hdel(fair, "recorded")
        # Past the window, not a wait for an answer: a probing join would place the fan.
        time.sleep(1.1)  # every worker's figures, a second old at most, are read again
        status, headers, body = _join(stack, early, fan)
        assert status == 200 and body["status"] == "pre_queue" and "X-Queue-Join" not in headers
    finally:
        redis.hset(fair, "recorded", recorded)
        redis.close()

    # A fan over their limit: the waitingroom's 429, with Retry-After; the refused calls
    # place nothing (the fan keeps one place).
    greedy = dev_token(stack, f"gw-greedy-{RUN_ID}", [])
    answers = [_join(stack, on_sale, greedy) for _ in range(40)]
    refused = [(s, h, b) for s, h, b in answers if s == 429]
    assert refused, "40 joins at once stay under the per-fan limit"
    assert all(b["code"] == "rate_limited" and "Retry-After" in h for _, h, b in refused)
    assert all("X-Queue-Join" not in h for _, h, _ in refused)
    assert len({b["position"] for s, _, b in answers if s == 200}) == 1

    after = _gateway_metrics(stack)
    for reason in ("token", "event", "body", "uncommitted", "limited"):
        name = "ticketing_gateway_queue_join_fallbacks_total"
        assert _metric(after, name, reason=reason) > _metric(before, name, reason=reason), reason


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
    # A ticket for nothing restorable (an admitted or sold-out place) is a plain join.
    status, headers, answer = _join(
        stack, on_sale, token, {"queue_ticket": signed(where="admitted")}
    )
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
    assert answer["position"] == mine["position"]


def test_a_lost_script_goes_to_the_waitingroom_which_loads_it_again(stack: Stack, on_sale: int):
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    try:
        redis.script_flush()  # as after a Redis restart (clients of others load theirs again)
    finally:
        redis.close()
    fan = dev_token(stack, f"gw-noscript-{RUN_ID}", [])
    status, headers, first = _join(stack, on_sale, fan)
    assert status == 200 and "X-Queue-Join" not in headers
    status, headers, again = _join(stack, on_sale, fan)
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
    assert again["position"] == first["position"]


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

"""What the gateway does not answer when a fan joins a queue, in the whole stack as `make
run` starts it: it only ever accepts, so every token it does not take, every join it cannot
place (no token, an unknown event, a body, a commitment not on record, a fan over the
limit) and a join whose Lua script Redis lost reach the waitingroom, which answers as it
always has. Each case is sent both ways, through the gateway and straight to a
waitingroom port."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import altcha
import jwt
from redis import Redis

from tests.e2e.gateway_join import (
    GATEWAY,
    _direct,
    _gateway_metrics,
    _join,
    _metric,
    _settings,
    _wait_for_gateway,
)
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID
from ticketing.auth import issue_dev_token
from ticketing.config import Settings


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


def test_a_door_with_its_challenge_on(stack: Stack, admin: str):
    """While an event's challenge is on, the gateway answers a join that carries a good
    solution itself (checked as the waitingroom checks it, used once) and hands every other
    to the waitingroom, which refuses it with a fresh challenge; in the automatic mode it
    follows the level in force and counts the joins it answers; off, it answers them all."""
    event = queue_event(stack, admin)["id"]
    path = f"/admin/queues/{event}"
    assert stack.request("PATCH", path, {"paused": True}, token=admin)[0] == 200
    _wait_for_gateway(stack, event)
    before = _gateway_metrics(stack)
    assert stack.request("PATCH", path, {"challenge_difficulty": 1}, token=admin)[0] == 200
    fans = iter(range(100))

    def new_fan_joins() -> tuple[int, dict[str, str], Any]:
        return _join(stack, event, dev_token(stack, f"gw-door-{next(fans)}-{RUN_ID}", []))

    # Every nginx worker reads the event's settings again within a second.
    deadline = time.monotonic() + 5
    while (answer := new_fan_joins())[0] != 403 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, headers, problem = answer
    assert (status, problem["code"]) == (403, "challenge_required"), problem
    assert "X-Queue-Join" not in headers
    for _ in range(5):  # not one worker still answering by itself
        status, headers, _ = new_fan_joins()
        assert status == 403 and "X-Queue-Join" not in headers

    def solved(token: str) -> str:
        status, _, problem = _join(stack, event, token)
        assert (status, problem["code"]) == (403, "challenge_required"), problem
        challenge = altcha.Challenge.from_dict(problem["challenge"])
        solution = altcha.solve_challenge(challenge, timeout=30)
        assert solution is not None
        return altcha.Payload(challenge, solution).to_base64()

    fan = dev_token(stack, f"gw-door-fan-{RUN_ID}", [])
    payload = solved(fan)
    status, headers, body = _join(stack, event, fan, {"altcha": payload})
    assert (status, body["status"]) == (200, "paused") and headers.get("X-Queue-Join") == GATEWAY
    # The waitingroom's own answer to a solved join, field by field but the ticket's time
    # and "waiting" (each one's count of at most a second ago, as in
    # test_gateway_join_answers.py: the gateway's may predate this very fan's place).
    direct = _join(stack, event, fan, {"altcha": solved(fan)}, base=_direct(stack))
    assert direct[0] == 200 and "X-Queue-Join" not in direct[1]
    assert {k: v for k, v in direct[2].items() if k not in ("queue_ticket", "waiting")} == {
        k: v for k, v in body.items() if k not in ("queue_ticket", "waiting")
    }
    # Used once: the waitingroom says so (the gateway takes it no more), with a fresh one.
    status, headers, problem = _join(stack, event, fan, {"altcha": payload})
    assert (status, problem["code"]) == (403, "challenge_failed") and "X-Queue-Join" not in headers
    # Another fan's is refused there too, and leaves it unused for its own fan.
    other = dev_token(stack, f"gw-door-other-{RUN_ID}", [])
    theirs = solved(other)
    status, headers, problem = _join(stack, event, fan, {"altcha": theirs})
    assert (status, problem["code"]) == (403, "challenge_failed") and "X-Queue-Join" not in headers
    status, headers, body = _join(stack, event, other, {"altcha": theirs})
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY, body
    name = "ticketing_gateway_queue_join_fallbacks_total"
    after = _gateway_metrics(stack)
    assert _metric(after, name, reason="challenge") > _metric(before, name, reason="challenge")

    # The automatic mode: the gateway answers while its level is 0, counting the joins in
    # the window the waitingroom steers by, and asks for a solution once it is raised.
    changed = {"challenge_difficulty": 0, "challenge_auto": True}
    assert stack.request("PATCH", path, changed, token=admin)[0] == 200
    _wait_for_gateway(stack, event)
    redis = Redis.from_url(stack.env["TICKETING_REDIS_URL"])
    door = f"{stack.env['TICKETING_REDIS_PREFIX']}q:{{{event}}}:"

    def joins_counted() -> int:
        keys = list(redis.scan_iter(match=door + "challenge:joins:*"))
        return sum(int(n) for n in redis.mget(keys)) if keys else 0

    try:
        before_joins = joins_counted()
        for _ in range(3):
            status, headers, _ = new_fan_joins()
            assert status == 200 and headers.get("X-Queue-Join") == GATEWAY
        assert joins_counted() >= before_joins + 3
        # Raised as the steering loop raises it, and raised again each try: the waitingrooms'
        # own steering, seeing a calm window, lowers it a step once every window, which can
        # fall between this write and a gateway worker's next read.
        deadline = time.monotonic() + 5  # every worker reads the level again within a second
        while True:
            redis.hset(door + "state", "challenge_level", 1)
            answer = new_fan_joins()
            if answer[0] == 403:
                break
            assert time.monotonic() < deadline, answer
            time.sleep(0.1)
        assert answer[2]["code"] == "challenge_required" and "X-Queue-Join" not in answer[1]
    finally:
        redis.close()
    assert stack.request("PATCH", path, {"challenge_auto": False}, token=admin)[0] == 200
    _wait_for_gateway(stack, event)  # off: the gateway answers again

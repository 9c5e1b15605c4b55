"""One person, one place, against the real app, Redis and PostgreSQL: a join records the
fan's address block (the address the waitingroom trusts: X-Real-IP from the gateway) and
device cookie, operators see the clusters; under harder_challenge a flagged fan's join
needs a harder challenge, and says why; under back_of_line a flagged fan is moved behind
everyone in line (the pre-queue too, and the whole cluster once it goes over K, and every
cluster at once when an operator turns the rule on), and their status says so."""

from __future__ import annotations

from typing import Any

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    admin,
    patch_queue,
    queue_event,
    queue_status,
    solve,
)
from tests.support import auth_header
from ticketing.domain.challenge import max_tries
from waitingroom.queue.signals_rules import DEVICE_COOKIE, harder_difficulty

DEVICE = "0123456789abcdef0123456789abcdef"


async def join_from(
    client, settings, user: str, event: int, ip: str, device: str | None = None, body=None
) -> tuple[int, Any, Any]:
    client.session.cookie_jar.clear()  # each fan's own browser: the cookie only if given
    headers = {**auth_header(settings, user), "X-Real-IP": ip}
    if device is not None:
        headers["Cookie"] = f"{DEVICE_COOKIE}={device}"
    return await call(client, "POST", f"/queue/{event}/join", headers, body)


async def clusters(client, settings, event: int) -> dict[str, Any]:
    status, body, _ = await call(client, "GET", f"/admin/queues/{event}/clusters", admin(settings))
    assert status == 200, body
    return body


async def positions(client, settings, event: int, users: list[str]) -> dict[str, Any]:
    out = {}
    for user in users:
        status, body = await queue_status(client, settings, user, event)
        assert status == 200, body
        out[user] = body
    return out


async def test_joins_record_blocks_and_devices_operators_see_the_clusters(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    figures = await patch_queue(qclient, queue_settings, event, paused=True, cluster_threshold=2)
    assert (figures["cluster_rule"], figures["cluster_threshold"]) == ("off", 2)

    status, body, headers = await join_from(qclient, queue_settings, "a1", event, "203.0.113.5")
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{DEVICE_COOKIE}=") and "HttpOnly" in cookie, cookie
    assert "Path=/queue/" in cookie and "SameSite=Lax" in cookie
    for user, ip in (("a2", "203.0.113.77"), ("a3", "203.0.113.200"), ("b1", "198.51.100.7")):
        status, _, headers = await join_from(qclient, queue_settings, user, event, ip, DEVICE)
        assert status == 200 and "Set-Cookie" not in headers  # ours already: kept
    # An IPv6 block is a /48.
    for user, ip in (("v1", "2001:db8:1:1::5"), ("v2", "2001:db8:1:ffff::9")):
        assert (await join_from(qclient, queue_settings, user, event, ip))[0] == 200
    assert (await join_from(qclient, queue_settings, "v3", event, "2001:db8:2::1"))[0] == 200

    listed = await clusters(qclient, queue_settings, event)
    assert (listed["cluster_rule"], listed["cluster_threshold"], listed["moved"]) == ("off", 2, 0)
    found = {(c["kind"], c["key"]): (c["accounts"], c["sample"]) for c in listed["clusters"]}
    # More than K=2 accounts: the /24 of three, the device of three; not 198.51.100.0/24
    # (one), nor 2001:db8:1::/48 (two: not more than K).
    assert found.pop(("address_block", "203.0.113.0/24")) == (3, ["a1", "a2", "a3"])
    ((kind, _), (accounts, sample)) = found.popitem()
    assert (kind, accounts, sample) == ("device", 3, ["a2", "a3", "b1"])
    assert found == {}
    # Every join leaves the same fans' places: nothing but records under rule off.
    places = await positions(qclient, queue_settings, event, ["a1", "a2", "a3", "b1"])
    assert [places[u]["position"] for u in ("a1", "a2", "a3", "b1")] == [1, 2, 3, 4]
    assert not any("moved" in body for body in places.values())

    # The rule's bounds are the PATCH model's: a bad value changes nothing.
    for bad in ({"cluster_rule": "ban"}, {"cluster_threshold": 0}, {"cluster_threshold": "3"}):
        status, problem, _ = await call(
            qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), bad
        )
        assert (status, problem["code"]) == (400, "validation_error"), (bad, problem)
    assert (await clusters(qclient, queue_settings, event))["cluster_threshold"] == 2


async def test_harder_challenge_asks_flagged_fans_more_work_and_says_why(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(
        qclient, queue_settings, event, paused=True, cluster_rule="harder_challenge",
        cluster_threshold=1,
    )  # fmt: skip
    # The door is off: the first account of a block joins with nothing, as does a fan of
    # another block (the control).
    assert (await join_from(qclient, queue_settings, "h1", event, "192.0.2.10"))[0] == 200
    assert (await join_from(qclient, queue_settings, "other", event, "198.51.100.9"))[0] == 200

    # The second account of the block is over K=1: asked for a harder challenge, told why.
    status, problem, _ = await join_from(qclient, queue_settings, "h2", event, "192.0.2.11")
    assert (status, problem["code"], problem["cluster"]) == (
        403,
        "challenge_required",
        "address_block",
    ), problem
    assert "from your network" in problem["detail"]
    harder = max_tries(harder_difficulty(0))
    assert problem["challenge"]["parameters"]["data"]["max_tries"] == harder

    # A challenge the event's door issues (the lowest: the door is off) is not enough.
    status, easy, _ = await call(
        qclient, "GET", f"/queue/{event}/challenge", auth_header(queue_settings, "h2")
    )
    assert status == 200 and easy["parameters"]["data"]["max_tries"] < harder
    status, refused, _ = await join_from(
        qclient, queue_settings, "h2", event, "192.0.2.11", body={"altcha": solve(easy)}
    )
    assert (status, refused["code"], refused["cluster"]) == (
        403,
        "challenge_failed",
        "address_block",
    )
    assert "easier" in refused["detail"], refused

    payload = solve(problem["challenge"])
    status, body, _ = await join_from(
        qclient, queue_settings, "h2", event, "192.0.2.11", body={"altcha": payload}
    )
    assert (status, body["position"]) == (200, 3), body
    status, again, _ = await join_from(
        qclient, queue_settings, "h2", event, "192.0.2.11", body={"altcha": payload}
    )
    assert (status, again["code"]) == (403, "challenge_failed") and "already used" in again[
        "detail"
    ]


async def test_back_of_line_moves_the_cluster_once_and_the_status_says_why(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(
        qclient, queue_settings, event, paused=True, cluster_rule="back_of_line",
        cluster_threshold=1,
    )  # fmt: skip
    for user, ip in (("a", "203.0.113.1"), ("b", "198.51.100.1"), ("c", "192.0.2.1")):
        assert (await join_from(qclient, queue_settings, user, event, ip))[0] == 200
    # d takes a's block over K: a goes behind c, and d, placed last, stays last.
    status, body, _ = await join_from(qclient, queue_settings, "d", event, "203.0.113.2")
    assert (status, body["position"], body.get("moved")) == (200, 4, "cluster"), body
    places = await positions(qclient, queue_settings, event, ["a", "b", "c", "d"])
    assert {u: p["position"] for u, p in places.items()} == {"a": 3, "b": 1, "c": 2, "d": 4}
    assert places["a"]["moved"] == "cluster" and "moved" not in places["b"]
    # Once: joining again (a fan's page does, with its ticket) moves nobody again.
    assert (await join_from(qclient, queue_settings, "e", event, "198.18.0.2"))[0] == 200
    status, body, _ = await join_from(qclient, queue_settings, "a", event, "203.0.113.1")
    assert (status, body["position"], body["moved"]) == (200, 3, "cluster")
    assert (await clusters(qclient, queue_settings, event))["moved"] == 2

    # Control: the same joins in an event whose rule is off keep the order they came in.
    control = await queue_event(pool)
    await patch_queue(qclient, queue_settings, control, paused=True, cluster_threshold=1)
    for user, ip in (("a", "203.0.113.1"), ("b", "198.51.100.1"), ("d", "203.0.113.2")):
        assert (await join_from(qclient, queue_settings, user, control, ip))[0] == 200
    places = await positions(qclient, queue_settings, control, ["a", "b", "d"])
    assert {u: p["position"] for u, p in places.items()} == {"a": 1, "b": 2, "d": 3}


async def test_back_of_line_before_on_sale_puts_the_fan_behind_the_pre_queue(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool, on_sale_in=3600)
    await patch_queue(
        qclient, queue_settings, event, cluster_rule="back_of_line", cluster_threshold=1
    )
    assert (await join_from(qclient, queue_settings, "p1", event, "203.0.113.9"))[1][
        "status"
    ] == "pre_queue"
    assert (await join_from(qclient, queue_settings, "p2", event, "198.51.100.9"))[1][
        "status"
    ] == "pre_queue"
    # p5 shares p4's block (and device): both out of the draw, behind the pre-queue.
    await join_from(qclient, queue_settings, "p4", event, "192.0.2.40", DEVICE)
    status, body, _ = await join_from(qclient, queue_settings, "p5", event, "192.0.2.41", DEVICE)
    assert (status, body["status"], body["moved"]) == (200, "waiting", "cluster"), body
    places = await positions(qclient, queue_settings, event, ["p2", "p4", "p5"])
    assert places["p2"]["status"] == "pre_queue"
    # Behind the two left in the pre-queue (p1, p2: drawn ahead of anyone waiting).
    assert (places["p4"]["position"], places["p5"]["position"]) == (3, 4), places


async def test_turning_back_of_line_on_moves_every_cluster_at_once(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True, cluster_threshold=1)
    for user, ip in (("s1", "203.0.113.3"), ("s2", "203.0.113.4"), ("t", "198.51.100.3")):
        assert (await join_from(qclient, queue_settings, user, event, ip))[0] == 200
    # The card signal, as the booking worker records it at confirm: t and u paid with one.
    await pool.executemany(
        "INSERT INTO queue_signal_cards (event_id, fingerprint, user_id) VALUES ($1, $2, $3)",
        [(event, "79758cf4654d6cc6", "t"), (event, "79758cf4654d6cc6", "u")],
    )
    assert (await join_from(qclient, queue_settings, "w", event, "192.0.2.3"))[0] == 200
    listed = await clusters(qclient, queue_settings, event)
    assert {(c["kind"], c["accounts"]) for c in listed["clusters"]} >= {
        ("address_block", 2),
        ("card", 2),
    }

    figures = await patch_queue(qclient, queue_settings, event, cluster_rule="back_of_line")
    assert figures["cluster_rule"] == "back_of_line"
    places = await positions(qclient, queue_settings, event, ["s1", "s2", "t", "w"])
    assert places["w"]["position"] == 1 and "moved" not in places["w"]
    assert {places[u]["position"] for u in ("s1", "s2", "t")} == {2, 3, 4}
    assert all(places[u]["moved"] == "cluster" for u in ("s1", "s2", "t"))
    assert (await clusters(qclient, queue_settings, event))["moved"] == 3

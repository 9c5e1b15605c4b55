"""The waiting room on a Redis Cluster (TICKETING_REDIS_URL=redis+cluster://...): a fan
joins, is told their place, is admitted, opens the queue's websocket and reserves seats, as
on one server; each event's keys live in one slot, events spread over the primaries, and
/healthz names the cluster and its nodes. The shared client's other work, the rate limits
and the views cache, spans slots and every primary."""

from __future__ import annotations

from redis.crc import key_slot

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    queue_status,
    reserve,
    socket_path,
    solve,
    until,
    wait_status,
)
from ticketing import cache
from ticketing.ratelimit import RateLimiter
from ticketing.web import REDIS_KEY
from waitingroom.queue.challenge_auto import DoorSteering
from waitingroom.queue.runtime import QUEUE_KEY


async def test_a_fan_joins_is_admitted_and_reserves_on_the_cluster(
    cluster_client, cluster_settings, pool, redis_cluster
) -> None:
    client, settings = cluster_client, cluster_settings
    event = await queue_event(pool)
    await in_snapshot(client, settings, event)
    await patch_queue(client, settings, event, paused=True, admit_per_minute=6000)
    for user in ("first", "second"):
        status, body = await join(client, settings, user, event)
        assert status == 200, body
    _, body = await queue_status(client, settings, "second", event)
    assert (body["status"], body["position"]) == ("paused", 2), body
    async with client.ws_connect(await socket_path(client, settings, "first", event)) as ws:
        told, _ = await until(ws, lambda m: m["type"] == "status", 5)
        assert (told["status"], told["position"]) == ("paused", 1), told
        await patch_queue(client, settings, event, paused=False)
        admitted = await wait_status(client, settings, "first", event, "admitted")
    status, hold = await reserve(client, settings, "first", event, admitted["admission_token"], 2)
    assert status == 201, hold

    # Every key of the event's queue is in the event's slot, on that slot's primary.
    store = client.app[QUEUE_KEY].store
    keys = [key async for key in store.redis.scan_iter(match=store.key(event, "*"))]
    assert len(keys) >= 5, keys
    assert {key_slot(key) for key in keys} == {key_slot(store.key(event, "state").encode())}
    primary = redis_cluster.primary_of(key_slot(keys[0]))
    with primary.client() as direct:
        assert direct.exists(*keys) == len(keys)


async def test_events_spread_over_the_primaries(
    cluster_client, cluster_settings, pool, redis_cluster
) -> None:
    client, settings = cluster_client, cluster_settings
    store = client.app[QUEUE_KEY].store
    on: dict[int, list[int]] = {}  # primary's port -> events whose queue it holds
    while len(on) < 3:  # (event ids are consecutive: each tag hashes to a slot anywhere)
        event = await queue_event(pool)
        status, body = await join(client, settings, f"spread-{event}", event)
        assert status == 200, body
        slot = key_slot(store.key(event, "waiting").encode())
        on.setdefault(redis_cluster.primary_of(slot).port, []).append(event)
        assert sum(map(len, on.values())) <= 30, on
    for port, events in on.items():
        with redis_cluster.node(port).client() as direct:
            for event in events:
                assert direct.zscore(store.key(event, "waiting"), f"spread-{event}") is not None


async def test_healthz_names_the_cluster_and_its_nodes(cluster_client, cluster_settings) -> None:
    status, body, _ = await call(cluster_client, "GET", "/healthz", {})
    assert status == 200, body
    assert body["components"]["redis"] == {
        "status": "ok",
        "mode": "cluster",
        "nodes": 6,
        "healthy": 6,
    }


async def test_rate_limits_and_the_views_cache_span_the_primaries(
    cluster_client, cluster_settings, redis_cluster
) -> None:
    redis, prefix = cluster_client.app[REDIS_KEY], cluster_settings.redis_prefix + "spans:"
    limiter = RateLimiter(redis, prefix, per_minute=60, burst=2)
    clients = [f"ip:10.0.0.{n}" for n in range(12)]  # keys on every primary
    assert (
        len({redis_cluster.primary_of(key_slot(f"{prefix}rl:{c}".encode())).port for c in clients})
        == 3
    )
    for _ in range(2):
        await redis.script_flush()  # as on a replica just promoted: no script
        answers = [await limiter.check(c) for c in clients]
        assert all(d.allowed for d in answers), answers
    assert not any(d.allowed for d in [await limiter.check(c) for c in clients])

    views = [{"id": n, "name": f"event {n}"} for n in range(12)]
    await cache.put_views(redis, prefix, views, 60)
    assert await cache.get_views(redis, prefix, [11, 3, 99, 0]) == {
        11: views[11],
        3: views[3],
        0: views[0],
    }
    await cache.invalidate(redis, prefix, range(12))
    assert await cache.get_views(redis, prefix, list(range(12))) == {}


async def test_the_door_s_challenge_on_the_cluster(cluster_client, cluster_settings, pool) -> None:
    """A solved challenge joins once (its use recorded in the event's slot), and the
    automatic mode reads the door's window there (MGET within one slot)."""
    client, settings = cluster_client, cluster_settings
    event = await queue_event(pool)
    await patch_queue(client, settings, event, challenge_difficulty=1, challenge_auto=True)
    status, problem = await join(client, settings, "door", event)
    assert (status, problem["code"]) == (403, "challenge_required"), problem
    payload = solve(problem["challenge"])
    status, body = await join(client, settings, "door", event, {"altcha": payload})
    assert status == 200, body
    status, problem = await join(client, settings, "door", event, {"altcha": payload})
    assert (status, problem["code"]) == (403, "challenge_failed"), problem
    runtime = client.app[QUEUE_KEY]
    window = await runtime.store.door_window(event, 10)
    assert (window.joins, window.failed) == (3, 1)
    assert await DoorSteering(runtime).step(event) == 1  # calm: the operator's level

"""When the queue websocket pushes (waitingroom/queue/hub.py's policy), counted on real
sockets: every fan hears at least every 5 s, a fan near the front hears each move within a
round, a fan far back is not told every round, an admission comes at once, and a client
that stops reading holds nobody up and is dropped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, get_port_socket
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.integration.booking.support import call, open_client
from tests.integration.queue.support import (
    in_snapshot,
    join,
    patch_queue,
    queue_event,
    socket_path,
    until,
)
from tests.support import auth_header, eventually
from ticketing.config import Settings
from ticketing.domain.seating import Section
from waitingroom.queue import scripts as queue_scripts
from waitingroom.queue.admission import admission_for_session
from waitingroom.queue.runtime import QUEUE_KEY

Heard = list[tuple[float, dict[str, Any]]]


async def listen(ws: aiohttp.ClientWebSocketResponse, heard: Heard) -> None:
    """Every message, with when it came (the wall clock, to set against the server's)."""
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            heard.append((time.time(), message.json()))


async def until_true(check: Callable[[], bool], timeout: float, what: str) -> None:
    await eventually(lambda: asyncio.sleep(0), lambda _: check(), timeout, what)


class Sockets:
    """Fans' websockets, each listened to: ``heard[user]``."""

    def __init__(self) -> None:
        self.heard: dict[str, Heard] = {}
        self._open: list[tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]] = []

    async def open(self, client: TestClient, settings: Settings, event: int, *users: str) -> None:
        for user in users:
            ws = await client.ws_connect(await socket_path(client, settings, user, event))
            self.heard[user] = []
            self._open.append((ws, asyncio.create_task(listen(ws, self.heard[user]))))

    async def close(self) -> None:
        for ws, _ in self._open:
            await ws.close()
        await asyncio.gather(*(listener for _, listener in self._open))


def statuses(heard: Heard, since: float = 0.0) -> Heard:
    return [(at, m) for at, m in heard if m["type"] == "status" and at >= since]


async def paused_line(client: TestClient, settings: Settings, pool, users: list[str]) -> int:
    """An event the admitters tick, its queue paused (nobody admitted yet) and ``users`` in
    line in that order; seats enough (1,000) that they never hold admission up."""
    event = await queue_event(pool, [Section("Field", 10, 100, 3000)])
    await in_snapshot(client, settings, event)
    await patch_queue(client, settings, event, paused=True, max_active=1000)
    for user in users:
        await join(client, settings, user, event)
    return event


async def test_every_fan_hears_at_least_every_5_s_while_nothing_changes(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    users = [f"still-{n}" for n in range(12)]  # more fans than keepalive slices
    for user in users:
        await join(qclient, queue_settings, user, event)
    sockets = Sockets()
    await sockets.open(qclient, queue_settings, event, *users)
    started = time.time()
    await asyncio.sleep(11)  # the scenario, not a wait: the window watched, nothing changes
    ended = time.time()
    await sockets.close()
    for user in users:
        times = [started] + [at for at, _ in statuses(sockets.heard[user], started)] + [ended]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= 5.2, (user, gaps)
        # only keepalives: not a status every round
        assert len(times) - 2 <= 4, (user, gaps)


async def test_a_fan_near_the_front_hears_each_move_within_a_round(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, paused=True)
    ahead = [f"leaver-{n}" for n in range(5)]
    for user in [*ahead, "near"]:
        await join(qclient, queue_settings, user, event)
    async with qclient.ws_connect(await socket_path(qclient, queue_settings, "near", event)) as ws:
        await until(ws, lambda m: m["type"] == "status" and m["position"] == 6, 5)
        for n, user in enumerate(ahead):
            await call(qclient, "POST", f"/queue/{event}/leave", auth_header(queue_settings, user))
            position = len(ahead) - n
            _, waited = await until(
                ws, lambda m, p=position: m["type"] == "status" and m["position"] == p, 3
            )
            assert waited < 1.0, (position, waited)


async def test_a_fan_far_back_is_not_told_every_small_move(qclient, queue_settings, pool) -> None:
    """Admitting two a second, the fan 40th hears every move and the fan 130th (who moves
    by less than a tenth in the window) hears its keepalive only."""
    line = [f"line-{n:03}" for n in range(130)]
    event = await paused_line(qclient, queue_settings, pool, line)
    near, far = line[39], line[129]
    sockets = Sockets()
    await sockets.open(qclient, queue_settings, event, near, far)
    heard = sockets.heard

    def moving(user: str) -> bool:
        return any(m["status"] == "waiting" for _, m in statuses(heard[user]))

    await patch_queue(qclient, queue_settings, event, paused=False, admit_per_minute=120)
    # (the far fan hears of the resume at its keepalive turn, within 4.5 s)
    await until_true(lambda: moving(near) and moving(far), 8, "the resume to be pushed")
    started = time.time()
    await asyncio.sleep(9)  # the scenario, not a wait: the window whose pushes are counted
    await sockets.close()
    near_heard, far_heard = statuses(heard[near], started), statuses(heard[far], started)
    near_positions = [m["position"] for _, m in near_heard]
    assert len(near_heard) >= 8 and near_positions == sorted(near_positions, reverse=True)
    assert near_positions[-1] <= 40 - 12, near_positions  # the line did move meanwhile
    assert 1 <= len(far_heard) <= 4, [m["position"] for _, m in far_heard]


async def test_a_pause_and_a_resume_reach_every_fan_at_once(qclient, queue_settings, pool) -> None:
    """Far back or near the front, every fan hears within a second that the line stopped
    and that it moves again, not at their keepalive turn (up to 4.5 s later)."""
    line = [f"resume-{n:02}" for n in range(30)]
    event = await queue_event(pool)
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(
        qclient, queue_settings, event, paused=False, admit_per_minute=1, max_active=0
    )  # moving, but nobody admitted under the test's feet
    for user in line:
        await join(qclient, queue_settings, user, event)
    sockets = Sockets()
    await sockets.open(qclient, queue_settings, event, *line)
    heard = sockets.heard

    def told(kind: str, since: float) -> list[float]:
        return [
            max((at for at, m in heard[u] if m["type"] == kind and at >= since), default=math.inf)
            for u in line
        ]

    await until_true(lambda: all(heard[u] for u in line), 5, "every fan's first message")
    for paused, kind in (
        (True, "paused"),
        (False, "resumed"),
        (True, "paused"),
        (False, "resumed"),
    ):
        asked = time.time()
        await patch_queue(qclient, queue_settings, event, paused=paused)
        await until_true(
            lambda k=kind, a=asked: max(told(k, a)) < math.inf, 3, f"every fan to hear {kind}"
        )
        assert max(told(kind, asked)) - asked < 1.0, (kind, told(kind, asked))
    # The full status (place and wait) follows at each fan's turn, within 5 s.
    await until_true(
        lambda: all(
            any(m["status"] == "waiting" for _, m in statuses(heard[u], asked)) for u in line
        ),
        5.5,
        "every fan's status after the resume",
    )
    await sockets.close()


async def test_an_admission_is_pushed_at_once(qclient, queue_settings, pool) -> None:
    users = [f"crowd-{n:02}" for n in range(40)]
    event = await paused_line(qclient, queue_settings, pool, users)
    sockets = Sockets()
    await sockets.open(qclient, queue_settings, event, *users)
    heard = sockets.heard
    # When the admitters announce each admission (the server's clock, on this machine).
    redis = Redis.from_url(queue_settings.redis_url)
    announced: dict[str, float] = {}
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(qclient.app[QUEUE_KEY].store.channel)

    async def announcements() -> int:
        message = await pubsub.get_message(timeout=0.1)
        if message is not None:
            body = json.loads(message["data"])
            if body["type"] == "admitted" and body["event_id"] == event:
                for user, _ in body["users"]:
                    announced[user] = body["at"] / 1000
        return len(announced)

    try:
        await patch_queue(qclient, queue_settings, event, paused=False, admit_per_minute=600)
        await eventually(announcements, lambda n: n >= 8, 10, "eight admissions")
        lags = {}
        for user in list(announced)[:8]:
            await until_true(
                lambda u=user: any(m["type"] == "admitted" for _, m in heard[u]), 3, user
            )
            arrived = next(at for at, m in heard[user] if m["type"] == "admitted")
            lags[user] = arrived - announced[user]
        # A round comes every half second: an admission told only by rounds would often be
        # later than this.
        assert max(lags.values()) < 0.3, lags
    finally:
        await pubsub.aclose()
        await redis.aclose()
        await sockets.close()


def small_send_buffers(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    """The test server's listening socket; what it accepts inherits a small send buffer, so
    that a client who stops reading backs pushes up into the server's own buffers soon."""
    sock = get_port_socket(host, port, family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return sock


async def stalled_socket(host: str, port: int, path: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def dropped() -> float:
    return REGISTRY.get_sample_value("ticketing_queue_dropped_sockets_total") or 0.0


async def test_a_stalled_client_holds_nobody_up_and_is_dropped(
    queue_settings, pool, worker
) -> None:
    client = await open_client(queue_settings, socket_factory=small_send_buffers)
    sender = client.app[QUEUE_KEY].hub.sender
    # A few pushes' worth backed up, for two seconds (16 KiB and 10 s in production).
    sender.slow_buffer_bytes, sender.slow_drop_seconds = 1024, 2.0
    loop = asyncio.get_running_loop()
    stalled = None
    try:
        line = [*(f"front-{n:02}" for n in range(80)), "stalled", "steady"]
        event = await paused_line(client, queue_settings, pool, line)
        stalled = await stalled_socket(
            client.host, client.port, await socket_path(client, queue_settings, "stalled", event)
        )
        before = dropped()
        heard: Heard = []
        async with client.ws_connect(
            await socket_path(client, queue_settings, "steady", event)
        ) as ws:
            listener = asyncio.create_task(listen(ws, heard))
            # Four admissions a second: both fans (near the front) are due a push every round.
            await patch_queue(client, queue_settings, event, paused=False, admit_per_minute=240)
            started = time.time()
            await until_true(lambda: dropped() > before, 15, "the stalled socket dropped")
            took = time.time() - started
            # The scenario, not a wait: a second more, in which the steady fan still hears.
            await asyncio.sleep(1)
            await ws.close()
            await listener
        # Filling the kernel's buffers takes a dozen pushes (six seconds), then two.
        assert dropped() == before + 1 and took < 12, took
        times = [started] + [at for at, _ in statuses(heard, started)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) >= took and max(gaps) < 1.2, gaps
        # The server hung up on the stalled client.
        async with asyncio.timeout(3):
            try:
                while await loop.sock_recv(stalled, 65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        if stalled is not None:
            stalled.close()
        await client.close()


async def test_a_waitingroom_loads_the_place_script_as_it_starts(queue_settings, pool) -> None:
    """The gateway runs PLACE by its SHA (deploy/lua/queue_join.lua): a waitingroom loads
    it as it starts, so a fresh stack's first joins need not cross to Python for it."""
    redis = Redis.from_url(queue_settings.redis_url)
    sha = hashlib.sha1(queue_scripts.PLACE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1
    try:
        await redis.script_flush()  # as after a Redis restart (others' clients reload theirs)
        assert await redis.script_exists(sha) == [False]
        client = await open_client(queue_settings)
        try:
            assert await redis.script_exists(sha) == [True]
        finally:
            await client.close()
    finally:
        await redis.aclose()


async def test_every_fan_hears_at_once_when_every_seat_left_is_held(
    qclient, queue_settings, pool
) -> None:
    """Far back or near the front, every fan's socket hears the all_held status within a
    second or so of the last seat being held, not at their keepalive turn (up to 4.5 s
    later)."""
    event = await queue_event(pool, [Section("Box", 1, 4, 10000)])  # serves two fans of 2
    await in_snapshot(qclient, queue_settings, event)
    await patch_queue(qclient, queue_settings, event, paused=True, admit_per_minute=60_000)
    # Fans far back (beyond the hundred looked at every round) are the ones at stake.
    buyers, line = ["buyer-a", "buyer-b"], [f"held-{n:03}" for n in range(130)]
    for user in [*buyers, *line]:
        await join(qclient, queue_settings, user, event)
    line = line[-27:]
    await patch_queue(qclient, queue_settings, event, paused=False)
    store = qclient.app[QUEUE_KEY].store

    async def sessions() -> list:
        return await store.redis.zrange(store.key(event, "active"), 0, -1, withscores=True)

    active = await eventually(sessions, lambda s: len(s) == 2, 5, "both buyers admitted")
    sockets = Sockets()
    await sockets.open(qclient, queue_settings, event, *line)
    heard = sockets.heard
    await until_true(lambda: all(statuses(heard[u]) for u in line), 3, "a first status each")
    held_at = time.time()
    for user, ends in active:
        user = user.decode()
        token = admission_for_session(queue_settings, user, event, int(ends) // 1000)
        status, hold, _ = await call(
            qclient,
            "POST",
            "/booking/reserve",
            {**auth_header(queue_settings, user), "X-Admission-Token": token},
            {"event_id": event, "quantity": 2},
        )
        assert status == 201, hold

    def told(user: str) -> float:
        return min(
            (at for at, m in statuses(heard[user], held_at) if m["status"] == "all_held"),
            default=math.inf,
        )

    await until_true(lambda: max(map(told, line)) < math.inf, 4, "every fan to hear all_held")
    await sockets.close()
    lags = sorted(told(u) - held_at for u in line)
    # Each fan's status changes in one push; the slices' turns alone would spread it over
    # 4.5 s.
    assert lags[-1] < 1.5, lags

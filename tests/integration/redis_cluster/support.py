"""Plain helpers of the Redis Cluster and Sentinel tests: a line of fans whose order and
admissions are watched through a node's loss, and the time joins take to come back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.queue.support import ROOMY, in_snapshot, join, patch_queue, queue_event
from tests.integration.queue.support import queue_status as status_of
from ticketing.config import Settings

LINE = [f"fan-{n:02}" for n in range(30)]
# The target for Redis: joins and status back within this long of a node's loss.
RESUME_SECONDS = 15


class Line:
    """The fans of LINE in one event's queue, admitted a few a second. :meth:`check` reads
    every fan's status and holds it to what a fan may see through any loss: the admitted
    are the front of the line and the others wait behind in line order, and a fan once
    admitted keeps that very session (the same end), never queued or admitted again."""

    def __init__(self, client: TestClient, settings: Settings, event: int) -> None:
        self.client, self.settings, self.event = client, settings, event
        self.sessions: dict[str, int] = {}  # fan -> the end of the session admitted to

    @classmethod
    async def moving(cls, client: TestClient, settings: Settings, pool: Any) -> Line:
        event = await queue_event(pool, ROOMY)
        await in_snapshot(client, settings, event)
        await patch_queue(client, settings, event, paused=True, admit_per_minute=300)
        for user in LINE:
            assert (await join(client, settings, user, event))[0] == 200
        await patch_queue(client, settings, event, paused=False)  # 5 fans a second
        return cls(client, settings, event)

    async def check(self) -> None:
        # Read from the back of the line to the front, one after another: admission moves
        # from the front while the reads go on, so a fan read after anyone behind them is
        # admitted if that one was. Read all at once, a front fan read a moment before a
        # tick could look "waiting" beside fans behind them read just after it admitted
        # them: not what a fan can see, but what separate reads of a moving line show.
        answers = [
            await status_of(self.client, self.settings, user, self.event) for user in reversed(LINE)
        ][::-1]
        for user, (status, body) in zip(LINE, answers, strict=True):
            assert status == 200, (user, body)  # nobody lost
        seen = {user: body for user, (_, body) in zip(LINE, answers, strict=True)}
        kinds = [seen[user]["status"] for user in LINE]
        front = kinds.count("admitted")
        assert kinds[:front] == ["admitted"] * front, kinds
        places = [seen[user]["position"] for user in LINE[front:]]
        assert places == sorted(places) and len(set(places)) == len(places), places
        for user in LINE[:front]:
            ends = seen[user]["admission_expires_at"]
            assert self.sessions.setdefault(user, ends) == ends, (user, seen[user])
        for user in LINE[front:]:
            assert user not in self.sessions, (user, seen[user])

    async def admitted(self, more: int) -> None:
        """Until ``more`` fans more are admitted, every status checked on the way."""
        wanted = len(self.sessions) + more
        while len(self.sessions) < wanted:
            await self.check()


async def joins_resume(client: TestClient, settings: Settings, event: int) -> float:
    """Seconds from now until a join of a new fan is answered 200, trying every 0.2 s (each
    try on its own: a try made while the node is lost may take seconds to fail). Only 200
    or 503 (unreachable, retry) may come meanwhile."""
    began = time.monotonic()
    tries: list[asyncio.Task[tuple[int, Any]]] = []
    try:
        while time.monotonic() - began < RESUME_SECONDS:
            tries.append(asyncio.create_task(join(client, settings, f"j{len(tries)}", event)))
            done, _ = await asyncio.wait(tries, timeout=0.2)
            answers = [task.result() for task in done]
            assert {status for status, _ in answers} <= {200, 503}, answers
            if any(status == 200 for status, _ in answers):
                return time.monotonic() - began
        raise AssertionError(f"no join answered within {RESUME_SECONDS} s")
    finally:
        for task in tries:
            task.cancel()
        await asyncio.gather(*tries, return_exceptions=True)

"""The queue's door: ``GET /queue/{event_id}/challenge`` (a proof-of-work challenge for
this fan and event) and the step a join takes through it (:func:`pass_the_door`): while
the event's challenge is on, a join carries a solved one, used once, or is refused with
``403 challenge_required`` / ``challenge_failed`` and a fresh challenge to solve.

The gateway checks a solution itself (deploy/lua/queue_door.lua, the same keys and the same
used set) and answers such a join (in the automatic mode counting it in the same window);
a join without one, or with one it does not take, it hands here."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ticketing.api import Api, Ok, Problems
from ticketing.api.common import RATE_LIMITED, UNAUTHORIZED
from ticketing.auth import require_user
from ticketing.domain.challenge import effective_difficulty
from ticketing.domain.queue import QueueConfig
from ticketing.problems import Problem
from waitingroom.queue import challenge
from waitingroom.queue.metrics import CHALLENGES, SOLVE_SECONDS
from waitingroom.queue.route_steps import (
    EVENT_ID,
    EVENT_NOT_FOUND,
    QUEUE_DOWN,
    event_id_of,
    event_or_404,
    queue_reachable,
)
from waitingroom.queue.runtime import QUEUE_KEY, QueueRuntime
from waitingroom.queue.shapes import ChallengeProblem, QueueChallenge

log = logging.getLogger(__name__)

CHALLENGE_API = Api()

# A join's 403s: its queue ticket's, and the door's while the event's challenge is on.
JOIN_FORBIDDEN = Problems(
    403,
    "the queue ticket is another fan's or another event's (queue_ticket_invalid); the "
    "event's challenge is on and the join carried no solution (challenge_required), or a "
    "wrong, expired or used one, or one issued to another fan or for another event "
    "(challenge_failed): these two carry a fresh challenge to solve",
    codes=("queue_ticket_invalid", "challenge_required", "challenge_failed"),
    extra=ChallengeProblem,
)

_FAILED = {
    "malformed": "The challenge solution could not be read; solve the new challenge.",
    "signature": "That challenge was not issued to you for this event; solve the new one.",
    "solution": "The challenge was not solved; solve the new challenge.",
    "expired": "The challenge expired; solve the new one.",
    "reused": "That challenge was already used; solve the new one.",
}


async def door_difficulty(runtime: QueueRuntime, event_id: int, config: QueueConfig) -> int:
    """The difficulty in force at the event's door (the automatic mode's level read only
    while that mode is on)."""
    level = await runtime.store.challenge_level(event_id) if config.challenge_auto else 0
    return effective_difficulty(config.challenge_difficulty, config.challenge_auto, level)


def fresh_challenge(runtime: QueueRuntime, event_id: int, user_id: str, difficulty: int) -> Any:
    secret = runtime.settings.queue_ticket_secret
    return challenge.issue(secret, event_id, user_id, max(1, difficulty))


async def pass_the_door(
    runtime: QueueRuntime, event_id: int, user_id: str, payload: str | None
) -> None:
    """Let a join through the event's door, or raise its 403 with a fresh challenge."""
    with queue_reachable():
        config = (await runtime.figures.get(event_id)).config
        if not config.challenge_difficulty and not config.challenge_auto:
            return  # off: no Redis call but the figures' (shared, at most once a second)
        difficulty = await door_difficulty(runtime, event_id, config)
        outcome = await _check(runtime, event_id, user_id, payload, difficulty)
        if config.challenge_auto:
            await runtime.store.count_door(
                event_id, failed=outcome not in ("solved", "required", "off")
            )
    if outcome in ("solved", "off"):
        return
    CHALLENGES.labels(outcome).inc()
    fresh = fresh_challenge(runtime, event_id, user_id, difficulty)
    if outcome == "required":
        raise Problem(
            403,
            "challenge_required",
            "This queue asks for a solved challenge with each join: solve this one and send "
            "it as altcha.",
            challenge=fresh,
        )
    log.info("queue challenge failed: event_id=%s user=%s why=%s", event_id, user_id, outcome)
    raise Problem(403, "challenge_failed", _FAILED[outcome], challenge=fresh)


async def _check(
    runtime: QueueRuntime, event_id: int, user_id: str, payload: str | None, difficulty: int
) -> str:
    """solved, off, required, or why the solution failed (a key of _FAILED)."""
    if difficulty == 0:
        return "off"
    if payload is None:
        return "required"
    verdict = challenge.verify(runtime.settings.queue_ticket_secret, event_id, user_id, payload)
    if not verdict.ok:
        return verdict.reason
    if not await runtime.store.use(event_id, verdict.signature, verdict.expires_at):
        return "reused"
    CHALLENGES.labels("solved").inc()
    if verdict.solve_ms is not None and verdict.solve_ms >= 0:
        SOLVE_SECONDS.observe(verdict.solve_ms / 1000)
    return "solved"


@CHALLENGE_API.get(
    "/queue/{event_id}/challenge",
    summary="A proof-of-work challenge (ALTCHA) for this fan and this event, single use",
    description="Solve it (the queue page does, in web workers) and send the widget's "
    "payload as the join's altcha. It is at the difficulty in force; while the event's "
    "challenge is off, at the lowest (a join then needs none). It expires after "
    f"{challenge.TTL_SECONDS} s.",
    path_ids=[EVENT_ID],
    auth=require_user,
    replies=[
        Ok(200, "The challenge", shape=QueueChallenge),
        UNAUTHORIZED,
        EVENT_NOT_FOUND,
        RATE_LIMITED,
        QUEUE_DOWN,
    ],
)
async def get_challenge(request: web.Request) -> web.Response:
    principal = require_user(request)
    event_id = event_id_of(request)
    runtime = request.app[QUEUE_KEY]
    await event_or_404(runtime, event_id)
    with queue_reachable():
        config = (await runtime.figures.get(event_id)).config
        difficulty = await door_difficulty(runtime, event_id, config)
    body = fresh_challenge(runtime, event_id, principal.user_id, difficulty)
    return web.json_response(body, headers={"Cache-Control": "no-store"})

"""One person, one place at a join (``POST /queue/{event_id}/join``): the fan's signals
recorded (:func:`record_signals`, before the door), the door a flagged fan passes under
``harder_challenge`` (:func:`pass_the_harder_door`, instead of the usual one), the move
to the back of the line under ``back_of_line`` (:func:`move_if_flagged`, after placing),
and the device cookie set on the answer.

Every refusal says why: a flagged fan's 403 names the cluster's kind (``cluster``:
address_block, device or card) and its detail says what it means; a move is in the fan's
status as ``"moved": "cluster"``. Nothing here refuses a join outright.

While an event's rule is on, the gateway hands its joins here (deploy/lua/queue_join.lua),
so no join bypasses it; while off, the gateway answers joins itself and records the
signals of the fans it places (the same keys), setting the device cookie as here.
"""

from __future__ import annotations

import base64
import binascii
import logging
import weakref
from dataclasses import dataclass

import orjson
from aiohttp import web

from ticketing.domain.challenge import max_tries
from ticketing.problems import Problem
from ticketing.ratelimit import client_address
from waitingroom.queue import challenge, challenge_routes
from waitingroom.queue.challenge_routes import door_difficulty, fresh_challenge
from waitingroom.queue.metrics import CHALLENGES
from waitingroom.queue.route_steps import queue_reachable
from waitingroom.queue.runtime import QueueRuntime
from waitingroom.queue.signals_cards import CardClusters
from waitingroom.queue.signals_rules import (
    DEFAULT_THRESHOLD,
    DEVICE_COOKIE,
    DEVICE_COOKIE_MAX_AGE,
    address_block,
    device_key,
    harder_difficulty,
    new_device_id,
)
from waitingroom.queue.signals_store import JoinSignals, SignalStore
from waitingroom.queue.store import Placement

log = logging.getLogger(__name__)

# What a flagged fan's refusal calls the cluster, and how its detail explains it.
KINDS = {"block": "address_block", "device": "device", "card": "card"}
_WHY = {
    "block": "many accounts joined this queue from your network",
    "device": "many accounts joined this queue from this browser",
    "card": "the card you paid with was used by another account",
}
_FAILED = {
    "malformed": "the solution could not be read",
    "signature": "that challenge was not issued to you for this event",
    "solution": "the challenge was not solved",
    "expired": "the challenge expired",
    "reused": "that challenge was already used",
    "easier": "that challenge was easier than the one asked of you",
}


@dataclass(frozen=True, slots=True)
class Signals:
    """A process's signal parts: the Redis side and the cards read from PostgreSQL."""

    store: SignalStore
    cards: CardClusters


_SIGNALS: weakref.WeakKeyDictionary[object, Signals] = weakref.WeakKeyDictionary()


def signals_of(runtime: QueueRuntime) -> Signals:
    """This runtime's signal parts, made at first use (scripts registered once)."""
    signals = _SIGNALS.get(runtime.store)
    if signals is None:
        signals = Signals(
            SignalStore(runtime.store.redis, runtime.settings), CardClusters(runtime.events.pool)
        )
        _SIGNALS[runtime.store] = signals
    return signals


@dataclass(frozen=True, slots=True)
class Arrival:
    """A join's signals, and the device cookie to set on its answer (None: it had one)."""

    signals: JoinSignals
    new_device: str | None


async def record_signals(
    request: web.Request, runtime: QueueRuntime, event_id: int, user_id: str, on_sale_ms: int
) -> Arrival:
    """Record the fan's address block and device for the event; what they found."""
    parts = signals_of(runtime)
    cookie = request.cookies.get(DEVICE_COOKIE)
    device = device_key(cookie)
    new_device = None
    if device is None:
        new_device = new_device_id()
        device = device_key(new_device)
    names = [f"device:{device}"]
    block = address_block(client_address(request))
    if block is not None:
        names.insert(0, f"block:{block}")
    with queue_reachable():
        rule, _ = await parts.store.rule(event_id, DEFAULT_THRESHOLD)
        card = (await parts.cards.flagged(event_id)).get(user_id, "") if rule.on else ""
        found = await parts.store.record_join(
            event_id, user_id, names, card, on_sale_ms, DEFAULT_THRESHOLD
        )
    return Arrival(found, new_device)


def cluster_kind(cluster: str) -> str:
    return KINDS.get(cluster.partition(":")[0], "address_block")


async def pass_the_door(
    runtime: QueueRuntime,
    event_id: int,
    user_id: str,
    payload: str | None,
    signals: JoinSignals,
) -> None:
    """The event's door (:func:`waitingroom.queue.challenge_routes.pass_the_door`), or
    for a fan flagged under harder_challenge, the harder one."""
    if signals.harder:
        await pass_the_harder_door(runtime, event_id, user_id, payload, signals.flagged)
    else:
        await challenge_routes.pass_the_door(runtime, event_id, user_id, payload)


async def pass_the_harder_door(
    runtime: QueueRuntime, event_id: int, user_id: str, payload: str | None, flagged: str
) -> None:
    """The door for a fan ``flagged`` under harder_challenge: a solved challenge of the
    harder difficulty (:func:`harder_difficulty` of the door's), used once, whether or
    not the event's own door is on; else 403 with a fresh one and why."""
    with queue_reachable():
        config = (await runtime.figures.get(event_id)).config
        needed = harder_difficulty(await door_difficulty(runtime, event_id, config))
        outcome = await _check(runtime, event_id, user_id, payload, needed)
        if config.challenge_auto:
            await runtime.store.count_door(event_id, failed=outcome not in ("solved", "required"))
    if outcome == "solved":
        return
    CHALLENGES.labels(outcome).inc()
    kind = flagged.partition(":")[0]
    fresh = fresh_challenge(runtime, event_id, user_id, needed)
    why = _WHY.get(kind, _WHY["block"])
    extra = {"challenge": fresh, "cluster": cluster_kind(flagged)}
    if outcome == "required":
        raise Problem(
            403,
            "challenge_required",
            f"This queue asks a harder challenge of accounts that look like one: {why}. "
            "Solve this one and send it as altcha.",
            **extra,
        )
    log.info(
        "queue harder challenge failed: event_id=%s user=%s why=%s", event_id, user_id, outcome
    )
    raise Problem(
        403,
        "challenge_failed",
        f"{_FAILED[outcome].capitalize()}; this queue asks a harder challenge of accounts "
        f"that look like one ({why}): solve the new one.",
        **extra,
    )


async def _check(
    runtime: QueueRuntime, event_id: int, user_id: str, payload: str | None, needed: int
) -> str:
    if payload is None:
        return "required"
    verdict = challenge.verify(runtime.settings.queue_ticket_secret, event_id, user_id, payload)
    if not verdict.ok:
        return verdict.reason
    if _tries_of(payload) < max_tries(needed):
        return "easier"  # one the event's door issued, before the fan was flagged
    if not await runtime.store.use(event_id, verdict.signature, verdict.expires_at):
        return "reused"
    CHALLENGES.labels("solved").inc()
    return "solved"


def _tries_of(payload: str) -> int:
    """The most tries of a payload whose signature checked out (its signed data)."""
    try:
        decoded = orjson.loads(base64.b64decode(payload, validate=True))
        tries = decoded["challenge"]["parameters"]["data"]["max_tries"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return 0
    return tries if isinstance(tries, int) else 0


async def move_if_flagged(
    runtime: QueueRuntime,
    event_id: int,
    user_id: str,
    on_sale_ms: int,
    arrival: Arrival,
    placement: Placement,
) -> tuple[Placement, bool]:
    """Under back_of_line, a flagged fan just placed (or back in line) moved to the back,
    once; their placement as it now stands, and whether they were ever moved."""
    found = arrival.signals
    if not found.to_move or placement.kind not in ("waiting", "pre"):
        return placement, bool(found.moved)
    store = signals_of(runtime).store
    with queue_reachable():
        moved = await store.to_back(event_id, on_sale_ms, [(user_id, found.flagged)])
        if not moved:
            return placement, False
        log.info(
            "queue fan moved to the back: event_id=%s user=%s cluster=%s",
            event_id,
            user_id,
            found.flagged,
        )
        now = await runtime.store.place(event_id, user_id, join=False, on_sale_ms=on_sale_ms)
    return now, True


async def moved_in(runtime: QueueRuntime, event_id: int, user_id: str) -> bool:
    """Whether the fan was moved to the back of the line (a status reads it; one read a
    second per process while nobody in the event was)."""
    store = signals_of(runtime).store
    _, any_moved = await store.rule(event_id, DEFAULT_THRESHOLD)
    return any_moved and await store.moved(event_id, user_id) is not None


def set_device_cookie(request: web.Request, response: web.Response, arrival: Arrival) -> None:
    """The device cookie on a join's answer, for a browser that had none of ours."""
    if arrival.new_device is None:
        return
    response.set_cookie(
        DEVICE_COOKIE,
        arrival.new_device,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path="/queue/",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )

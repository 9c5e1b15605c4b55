"""The proof of work at the queue's door, against the real app and Redis: off, a join needs
nothing; on, a join without a solution or with a wrong, reused, another fan's or another
event's one is refused with a fresh challenge, a solved one joins as before (the
pre-queue too); operators set it (bad values change nothing) and the automatic mode
raises it under a spike."""

from __future__ import annotations

import dataclasses
from typing import Any

import altcha

from tests.integration.booking.support import call
from tests.integration.queue.support import (
    admin,
    get_queue,
    join,
    patch_queue,
    queue_event,
    solve,
)
from tests.support import auth_header, settings_with
from waitingroom.queue.challenge_auto import DoorSteering
from waitingroom.queue.runtime import QUEUE_KEY


async def get_challenge(client, settings, user: str, event: int) -> dict[str, Any]:
    status, body, headers = await call(
        client, "GET", f"/queue/{event}/challenge", auth_header(settings, user)
    )
    assert status == 200, body
    assert set(body) == {"parameters", "signature"}
    assert headers["Cache-Control"] == "no-store"
    return body


def refused(status: int, problem: Any, code: str) -> bool:
    """A 403 problem with ``code`` and a fresh challenge to solve."""
    return (
        status == 403
        and problem["code"] == code
        and problem["type"].endswith(code)
        and set(problem["challenge"]) == {"parameters", "signature"}
    )


async def test_off_a_join_needs_nothing_on_it_needs_a_solution_used_once(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    figures = await patch_queue(qclient, queue_settings, event, paused=True)  # places hold still
    assert (figures["challenge_difficulty"], figures["challenge_auto"]) == (0, False)
    status, body = await join(qclient, queue_settings, "plain", event)
    assert (status, body["status"]) == (200, "paused")

    changed = await patch_queue(qclient, queue_settings, event, challenge_difficulty=1)
    assert changed["challenge_difficulty"] == changed["effective_challenge_difficulty"] == 1
    status, problem = await join(qclient, queue_settings, "fan", event)
    assert refused(status, problem, "challenge_required"), problem
    assert problem["challenge"]["parameters"]["algorithm"] == "PBKDF2/SHA-256"

    payload = solve(problem["challenge"])  # the one the refusal carried
    status, body = await join(qclient, queue_settings, "fan", event, {"altcha": payload})
    assert (status, body["status"], body["position"]) == (200, "paused", 2), body
    status, problem = await join(qclient, queue_settings, "fan", event, {"altcha": payload})
    assert refused(status, problem, "challenge_failed"), problem
    assert "already used" in problem["detail"]

    fresh = solve(await get_challenge(qclient, queue_settings, "fan", event))
    status, body = await join(qclient, queue_settings, "fan", event, {"altcha": fresh})
    assert (status, body["position"]) == (200, 2)  # the same place, as any join again

    unsolved = await get_challenge(qclient, queue_settings, "fan", event)
    forged = altcha.Payload(
        altcha.Challenge.from_dict(unsolved), altcha.Solution(0, "00" * 32)
    ).to_base64()
    for bad in (forged, "not base64!", "e30="):
        status, problem = await join(qclient, queue_settings, "fan", event, {"altcha": bad})
        assert refused(status, problem, "challenge_failed"), (bad, problem)


async def test_a_challenge_is_bound_to_its_fan_and_event(qclient, queue_settings, pool) -> None:
    event, other = await queue_event(pool), await queue_event(pool)
    for each in (event, other):
        await patch_queue(qclient, queue_settings, each, challenge_difficulty=1, paused=True)
    payload = solve(await get_challenge(qclient, queue_settings, "alice", event))
    status, problem = await join(qclient, queue_settings, "mallory", event, {"altcha": payload})
    assert refused(status, problem, "challenge_failed"), problem
    status, problem = await join(qclient, queue_settings, "alice", other, {"altcha": payload})
    assert refused(status, problem, "challenge_failed"), problem
    # Refused elsewhere, it was not used up: alice still joins with it where it belongs.
    status, body = await join(qclient, queue_settings, "alice", event, {"altcha": payload})
    assert (status, body["status"]) == (200, "paused"), body


async def test_a_pre_queue_join_needs_one_too(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool, on_sale_in=600)
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=1)
    status, problem = await join(qclient, queue_settings, "early", event)
    assert refused(status, problem, "challenge_required"), problem
    payload = solve(problem["challenge"])
    status, body = await join(qclient, queue_settings, "early", event, {"altcha": payload})
    assert (status, body["status"]) == (200, "pre_queue"), body


async def test_bad_settings_change_nothing(qclient, queue_settings, pool) -> None:
    event = await queue_event(pool)
    await patch_queue(qclient, queue_settings, event, challenge_difficulty=2)
    for bad in (
        {"challenge_difficulty": -1},
        {"challenge_difficulty": 11},
        {"challenge_difficulty": "3"},
        {"challenge_difficulty": 1.5},
        {"challenge_difficulty": True},
        {"challenge_difficulty": None},
        {"challenge_auto": 1},
        {"challenge_difficulty": 3, "challenge_auto": "yes"},
    ):
        status, problem, headers = await call(
            qclient, "PATCH", f"/admin/queues/{event}", admin(queue_settings), bad
        )
        assert (status, problem["code"]) == (400, "validation_error"), bad
        assert headers["Content-Type"].startswith("application/problem+json")
    kept = await get_queue(qclient, queue_settings, event)
    assert (kept["challenge_difficulty"], kept["challenge_auto"]) == (2, False)


async def test_the_automatic_mode_raises_it_under_a_spike_and_lowers_it_when_calm(
    qclient, queue_settings, pool
) -> None:
    event = await queue_event(pool)
    auto = await patch_queue(qclient, queue_settings, event, challenge_auto=True)
    assert (auto["challenge_difficulty"], auto["effective_challenge_difficulty"]) == (0, 0)
    runtime = qclient.app[QUEUE_KEY]
    # A threshold of a join a second over the 10 s window: 11 joins are a spike.
    door = DoorSteering(
        dataclasses.replace(
            runtime, settings=settings_with(runtime.settings, challenge_auto_joins_per_second=1)
        )
    )
    assert await door.step(event) == 0  # calm: stays off
    for _ in range(11):
        await runtime.store.count_door(event, failed=False)
    assert await door.step(event) == 1
    assert (await get_queue(qclient, queue_settings, event))["effective_challenge_difficulty"] == 1
    status, problem = await join(qclient, queue_settings, "spiked", event)
    assert refused(status, problem, "challenge_required"), problem
    # Turned off by an operator: the level goes with it.
    off = await patch_queue(qclient, queue_settings, event, challenge_auto=False)
    assert off["effective_challenge_difficulty"] == 0
    status, _ = await join(qclient, queue_settings, "spiked", event)
    assert status == 200


async def test_the_automatic_mode_stops_at_its_ceiling(qclient, queue_settings, pool) -> None:
    runtime = qclient.app[QUEUE_KEY]

    def steering(**settings: int) -> DoorSteering:
        tuned = settings_with(runtime.settings, challenge_auto_joins_per_second=1, **settings)
        return DoorSteering(dataclasses.replace(runtime, settings=tuned))

    async def spiked_twice(door: DoorSteering, event: int) -> list[int | None]:
        levels = []
        for _ in range(2):
            for _ in range(11):  # a join a second is the threshold: 11 in the window spike
                await runtime.store.count_door(event, failed=False)
            levels.append(await door.step(event))
        return levels

    capped = await queue_event(pool)
    await patch_queue(qclient, queue_settings, capped, challenge_auto=True)
    assert await spiked_twice(steering(challenge_auto_max_difficulty=1), capped) == [1, 1]
    figures = await get_queue(qclient, queue_settings, capped)
    assert figures["effective_challenge_difficulty"] == 1
    # The control: the same two spikes under the default ceiling climb two steps.
    free = await queue_event(pool)
    await patch_queue(qclient, queue_settings, free, challenge_auto=True)
    assert await spiked_twice(steering(), free) == [1, 2]

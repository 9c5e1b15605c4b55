"""The door's challenges without I/O: a solved one verifies only for its fan and event and
until it expires; the difficulty scale; the automatic mode's steps; the default setting."""

from __future__ import annotations

import time

import altcha
import pytest
import redis.asyncio

from ticketing.config import ConfigError, Settings
from ticketing.domain.challenge import (
    MAX_DIFFICULTY,
    DoorWindow,
    effective_difficulty,
    max_tries,
    next_auto_level,
)
from waitingroom.queue import challenge
from waitingroom.queue.store_config import ConfigStore

SECRET = "s" * 40


def solved(event_id: int, user: str) -> str:
    issued = altcha.Challenge.from_dict(challenge.issue(SECRET, event_id, user, 1))
    solution = altcha.solve_challenge(issued, timeout=30)
    assert solution is not None
    return altcha.Payload(issued, solution).to_base64()


def test_a_solution_verifies_only_for_its_fan_and_event() -> None:
    payload = solved(7, "alice")
    verdict = challenge.verify(SECRET, 7, "alice", payload)
    assert verdict.ok and len(verdict.signature) == 64
    assert verdict.expires_at > time.time()
    assert challenge.verify(SECRET, 8, "alice", payload).reason == "signature"
    assert challenge.verify(SECRET, 7, "bob", payload).reason == "signature"
    # "7:1" and "71:" style ids cannot meet: the event id ends at the first colon.
    assert challenge.verify(SECRET, 71, "lice", payload).reason == "signature"
    assert challenge.verify("t" * 40, 7, "alice", payload).reason == "signature"


def test_unsolved_tampered_and_malformed_payloads_fail() -> None:
    issued = challenge.issue(SECRET, 7, "alice", 1)
    unsolved = altcha.Payload(
        altcha.Challenge.from_dict(issued), altcha.Solution(0, "00" * 32)
    ).to_base64()
    assert challenge.verify(SECRET, 7, "alice", unsolved).reason == "solution"
    easier = dict(issued, parameters={**issued["parameters"], "cost": 1})
    tampered = altcha.Payload(
        altcha.Challenge.from_dict(easier), altcha.Solution(0, "00" * 32)
    ).to_base64()
    assert challenge.verify(SECRET, 7, "alice", tampered).reason == "signature"
    for bad in ("", "%%%", "e30=", "W10=", "x" * 5000):
        assert challenge.verify(SECRET, 7, "alice", bad).reason == "malformed", bad


def test_an_expired_challenge_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    issued_at = time.time() - challenge.TTL_SECONDS - 1
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: issued_at)
        payload = solved(7, "alice")
    assert challenge.verify(SECRET, 7, "alice", payload).reason == "expired"


def test_each_step_doubles_the_work() -> None:
    assert max_tries(0) == 0
    assert [max_tries(d) for d in (1, 2, 4)] == [1_250, 2_500, 10_000]
    assert max_tries(MAX_DIFFICULTY + 5) == max_tries(MAX_DIFFICULTY) == 640_000
    issued = challenge.issue(SECRET, 7, "alice", 4)["parameters"]
    assert (issued["algorithm"], issued["cost"]) == ("PBKDF2/SHA-256", 1_000)


def test_the_automatic_mode_steps_up_under_a_spike_and_down_when_calm() -> None:
    calm, busy = DoorWindow(10, 50, 0), DoorWindow(10, 5_000, 0)
    failing = DoorWindow(10, 50, 300)

    def step(level: int, base: int, window: DoorWindow) -> int:
        return next_auto_level(level, base, window, 200, 20)

    assert step(0, 0, calm) == 0
    assert step(0, 0, busy) == 1
    assert step(1, 0, failing) == 2
    assert step(3, 2, calm) == 2  # back down, never below the operator's
    assert step(0, 4, busy) == 5  # up from the operator's
    assert step(MAX_DIFFICULTY, 0, busy) == MAX_DIFFICULTY
    assert effective_difficulty(2, False, 9) == 2  # the level counts in auto mode only
    assert effective_difficulty(2, True, 5) == 5
    assert effective_difficulty(2, True, 0) == 2


def test_the_automatic_mode_rises_no_higher_than_its_ceiling() -> None:
    calm, busy = DoorWindow(10, 50, 0), DoorWindow(10, 5_000, 0)

    def step(level: int, base: int, window: DoorWindow, ceiling: int) -> int:
        return next_auto_level(level, base, window, 200, 20, ceiling=ceiling)

    assert step(3, 3, busy, 10) == 4  # the control: without a ceiling in the way, up
    assert step(4, 3, busy, 4) == 4  # at the ceiling under a spike: stays
    assert step(7, 3, busy, 4) == 4  # above a lowered ceiling: down to it at once
    assert step(7, 3, calm, 4) == 3  # and down a step from there when calm
    assert step(0, 5, busy, 4) == 5  # the operator's own level holds above the ceiling
    assert step(5, 5, calm, 0) == 5
    assert step(0, 0, busy, 0) == 0  # ceiling 0: the mode never raises the door


def test_the_ceiling_comes_from_its_setting() -> None:
    env = {"TICKETING_ENV": "dev"}
    assert Settings.from_env(env).challenge_auto_max_difficulty == MAX_DIFFICULTY
    chosen = {**env, "TICKETING_CHALLENGE_AUTO_MAX_DIFFICULTY": "5"}
    assert Settings.from_env(chosen).challenge_auto_max_difficulty == 5
    with pytest.raises(ConfigError, match="0 to 10"):
        Settings.from_env({**env, "TICKETING_CHALLENGE_AUTO_MAX_DIFFICULTY": "11"})


def test_a_new_events_default_comes_from_the_setting() -> None:
    env = {"TICKETING_ENV": "dev"}
    assert Settings.from_env(env).challenge_default_difficulty == 0
    chosen = {**env, "TICKETING_CHALLENGE_DEFAULT_DIFFICULTY": "4"}
    settings = Settings.from_env(chosen)
    assert settings.challenge_default_difficulty == 4
    # An event nobody set anything for reads it (no Redis call: the client never connects).
    store = ConfigStore(redis.asyncio.Redis(), settings)
    assert store.config_from({}).challenge_difficulty == 4
    assert store.config_from({b"challenge_difficulty": b"0"}).challenge_difficulty == 0
    for bad in ("11", "-1", "x", "2.5"):
        with pytest.raises(ConfigError):
            Settings.from_env({**env, "TICKETING_CHALLENGE_DEFAULT_DIFFICULTY": bad})

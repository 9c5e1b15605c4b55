"""The queue's door (issue 14's proof of work) as the benchmarks meet it: solving a
challenge the waitingroom issued, within a CPU budget, as a bot's core does; and a solved
challenge as a fan's device would send it, minted by the bench.

Why mint. A try is one PBKDF2-SHA-256 of 1,000 iterations (``ticketing.domain.challenge``):
about 0.2 ms of this machine's core in native code, so difficulty 3 (at most 5,000 tries,
half on average) costs about half a core-second per fan. Twenty thousand fans' solves would
take the load generators hours of the two cores the servers run on, and that work is the
fans' phones', not anything the servers do: it is not what a join-throughput or seat-share
figure measures. So a fan's solution is minted with the stack's own queue ticket secret (as
the load generators mint the fans' dev tokens with the JWT secret): the challenge issued
as ``waitingroom.queue.challenge.issue`` issues it, to that fan for that event, with the
bench choosing the counter (drawn as the waitingroom draws it), so the solution is known
after one derivation, the one the waitingroom makes when it issues. The servers verify it
exactly as a solved one (the same keys, shape and single-use record). What a fan's device
spends is modelled apart (:func:`device_seconds`, from the tries per second measured in
headless Chromium by bench/solve_browser.py).

Bots get no such help: :func:`solve_within` brute-forces the challenge the waitingroom
issued, counter by counter as the widget does, and gives up once the account's CPU budget
(thread CPU time, not wall time: the two cores are shared) is spent.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import altcha
import orjson

from ticketing.domain.challenge import ITERATIONS
from waitingroom.queue.challenge import ALGORITHM, TTL_SECONDS, _keys


def payload_of(challenge: dict[str, Any], counter: int, derived_key: str, took_ms: float) -> str:
    """The widget's payload (base64 JSON) for a challenge and its solution."""
    body = {
        "challenge": challenge,
        "solution": {"counter": counter, "derivedKey": derived_key, "time": round(took_ms)},
    }
    return base64.b64encode(orjson.dumps(body)).decode()


def minted(
    secret: str,
    event_id: int,
    user_id: str,
    most: int,
    rng: random.Random,
    tries_per_second: float = 0.0,
) -> tuple[str, int]:
    """(payload, tries): a solved challenge for this fan and event of at most ``most``
    tries (``ticketing.domain.challenge.max_tries`` of the difficulty), as the waitingroom
    would issue it and the fan's device would send it back after ``tries`` tries (the
    counter, drawn as the waitingroom draws it, plus one; the solution's time is what they
    take at ``tries_per_second``, 0 when not given). One derivation."""
    challenge_key, key_key = _keys(secret, event_id, user_id)
    counter = rng.randrange(most)
    derived: list[bytes] = []

    def derive(parameters: Any, salt: bytes, password: bytes) -> bytes:
        key = altcha.derive_key_pbkdf2(parameters, salt, password)
        derived.append(key)
        return key

    challenge = altcha.create_challenge(
        algorithm=ALGORITHM,
        cost=ITERATIONS,
        derive_key=derive,
        counter=counter,
        expires_at=int(time.time()) + TTL_SECONDS,
        data={"max_tries": most},
        hmac_secret=challenge_key,
        hmac_key_secret=key_key,
    )
    took_ms = device_seconds(counter + 1, tries_per_second) * 1000
    return payload_of(challenge.to_dict(), counter, derived[0].hex(), took_ms), counter + 1


def device_seconds(tries: int, tries_per_second: float) -> float:
    """How long a fan's device takes for ``tries`` at its measured pace."""
    return tries / tries_per_second if tries_per_second > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Solve:
    """One attempt at a challenge: the payload (None when the budget ran out first), the
    tries made and the CPU seconds they took."""

    payload: str | None
    tries: int
    cpu_seconds: float


def solve_within(
    challenge: dict[str, Any],
    cpu_budget: float,
    clock: Callable[[], float] = time.thread_time,
) -> Solve:
    """Brute-force a challenge the waitingroom issued (counters from 0, as the ALTCHA
    widget's worker and ``altcha.solve_challenge`` do), giving up once ``cpu_budget``
    seconds of ``clock`` (this thread's CPU time) are spent."""
    parameters = altcha.Challenge.from_dict(challenge).parameters
    nonce = bytes.fromhex(parameters.nonce)
    salt = bytes.fromhex(parameters.salt)
    prefix = bytes.fromhex(parameters.key_prefix)
    most = int((parameters.data or {}).get("max_tries", 0)) or 2**32
    started = clock()
    for counter in range(most):
        spent = clock() - started
        if spent >= cpu_budget:
            return Solve(None, counter, spent)
        key = hashlib.pbkdf2_hmac(
            "sha256",
            nonce + struct.pack(">I", counter),
            salt,
            parameters.cost,
            parameters.key_length,
        )
        if key.startswith(prefix):
            spent = clock() - started
            return Solve(
                payload_of(challenge, counter, key.hex(), spent * 1000), counter + 1, spent
            )
    return Solve(None, most, clock() - started)

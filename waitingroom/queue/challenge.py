"""ALTCHA challenges at the queue's door: issued to one fan for one event, checked when
they join (``ticketing.domain.challenge`` has the difficulty scale and the automatic mode;
``waitingroom.queue.store_challenge`` records the used ones).

Bound to the fan and the event by the keys themselves: a challenge is signed, and its
derived key signed, with keys derived from the queue ticket secret (which the gateway holds
too: deploy/lua/queue_door.lua checks solutions the same way), the event and the fan,
so one issued to anyone else, or for another event, fails the signature check (nothing of
the fan's is written into the challenge the browser sees). Used once: its signature is
recorded in Redis until it expires (:meth:`ChallengeStore.use`).

Verification takes ALTCHA's fast path (``hmac_key_secret``): one HMAC of the key the fan
found, not another derivation; issuing costs one derivation (the counter's key).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import altcha
import orjson

from ticketing.domain.challenge import ITERATIONS, max_tries

ALGORITHM = "PBKDF2/SHA-256"
# Long enough to fetch, solve at the highest difficulty and join; the used ones are kept
# this long, after which the challenge is refused as expired anyway.
TTL_SECONDS = 300
# A payload is a few hundred bytes of base64: anything far longer is not one of ours.
MAX_PAYLOAD_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Verdict:
    """A payload checked: ``ok``, or why not (``reason``); ``signature`` names the
    challenge for the single-use record; ``solve_ms`` is the time the fan's browser
    reported, when it did."""

    ok: bool
    reason: str
    signature: str = ""
    expires_at: int = 0
    solve_ms: float | None = None


def issue(secret: str, event_id: int, user_id: str, difficulty: int) -> dict[str, Any]:
    """A fresh challenge for this fan and event at ``difficulty`` (above 0), as the
    widget takes it (``{"parameters": ..., "signature": ...}``)."""
    challenge_key, key_key = _keys(secret, event_id, user_id)
    challenge = altcha.create_challenge(
        algorithm=ALGORITHM,
        cost=ITERATIONS,
        counter=secrets.randbelow(max_tries(difficulty)),
        expires_at=int(time.time()) + TTL_SECONDS,
        # Signed with the rest: the page's progress bar (tries so far of the most it takes).
        data={"max_tries": max_tries(difficulty)},
        hmac_secret=challenge_key,
        hmac_key_secret=key_key,
    )
    body: dict[str, Any] = challenge.to_dict()
    return body


def verify(secret: str, event_id: int, user_id: str, payload: str) -> Verdict:
    """Whether ``payload`` (the widget's base64 JSON) solves a challenge issued to this
    fan for this event, unexpired; not whether it was used before."""
    if len(payload) > MAX_PAYLOAD_CHARS:
        return Verdict(False, "malformed")
    try:
        decoded = orjson.loads(base64.b64decode(payload, validate=True))
        parsed = altcha.Payload.from_dict(decoded)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        return Verdict(False, "malformed")
    parameters = parsed.challenge.parameters
    if parameters.algorithm != ALGORITHM or not isinstance(parsed.challenge.signature, str):
        return Verdict(False, "malformed")
    challenge_key, key_key = _keys(secret, event_id, user_id)
    result = altcha.verify_solution(parsed, challenge_key, hmac_key_secret=key_key)
    if result.expired:
        return Verdict(False, "expired")
    if not result.verified:
        # A signature that does not check out is a challenge issued to someone else, for
        # another event, or tampered with; a key that does not is an unsolved one.
        return Verdict(False, "signature" if result.invalid_signature else "solution")
    solve_ms = parsed.solution.time
    return Verdict(
        True,
        "solved",
        signature=parsed.challenge.signature,
        expires_at=int(parameters.expires_at or 0),
        solve_ms=float(solve_ms) if isinstance(solve_ms, int | float) else None,
    )


@functools.lru_cache(maxsize=4096)
def _keys(secret: str, event_id: int, user_id: str) -> tuple[str, str]:
    """The fan's and event's keys: one signs the challenge, one the key it hides. The
    event id is an integer, so the first ":" ends it whatever the user id holds."""
    base = hmac.new(secret.encode(), b"ticketing/queue-challenge", hashlib.sha256).digest()
    bound = f"{event_id}:{user_id}".encode()
    return (
        hmac.new(base, b"challenge|" + bound, hashlib.sha256).hexdigest(),
        hmac.new(base, b"key|" + bound, hashlib.sha256).hexdigest(),
    )

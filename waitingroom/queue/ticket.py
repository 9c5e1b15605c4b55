"""Queue tickets: HS256 JWTs that say where a fan stood in an event's queue (claims ``sub``,
``event_id``, ``where``, ``place``, ``epoch``, ``exp``). Every join and status answer carries
a fresh one; a fan who presents it on join gets that place back if Redis lost the queue (see
the PLACE script), and an admitted fan (``where`` "admitted", ``place`` the session's end in
ms) their session (see KEEP_CLAIM, waitingroom/queue/scripts_claims.py).

Two keys, by what a ticket is worth:

- A place in line is signed with ``TICKETING_QUEUE_TICKET_SECRET``, which the gateway holds
  too: its fast join path (deploy/lua/queue_join.lua) answers joins with such tickets. That
  key gives whoever takes the gateway nothing it does not already have: the gateway writes
  the line in Redis itself.
- An admitted fan's ticket gives back a session, and with it admission tokens: it is worth
  an admission, so it is signed with a key derived from ``TICKETING_ADMISSION_SECRET``, which
  the gateway never gets (deploy/gateway.py). An "admitted" ticket under the line key is
  refused like a forged one: a taken gateway cannot let anyone skip the line with it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time

import jwt

from ticketing.config import Settings
from ticketing.jwt_speed import HS256Signer
from ticketing.problems import Problem, validation_error

TICKET_TTL_SECONDS = 24 * 3600
RESTORABLE = frozenset({"waiting", "pre"})
ADMITTED = "admitted"


def issue_ticket(
    settings: Settings, event_id: int, user_id: str, where: str, place: int, epoch: str
) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "event_id": event_id,
        "where": where,
        "place": place,
        "epoch": epoch,
        "iat": now,
        "exp": now + TICKET_TTL_SECONDS,
    }
    key = admitted_key(settings) if where == ADMITTED else settings.queue_ticket_secret
    return _signer(key).sign(claims)


def admitted_key(settings: Settings) -> str:
    """The key of admitted fans' tickets: the admission secret's, kept apart from the
    admission tokens' own by derivation (a ticket never passes for a token, nor back)."""
    return _derived(settings.admission_secret)


@functools.lru_cache(maxsize=4)
def _derived(admission_secret: str) -> str:
    label = b"ticketing/queue-ticket/admitted"
    return hmac.new(admission_secret.encode(), label, hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=4)
def _signer(secret: str) -> HS256Signer:
    return HS256Signer(secret)


def read_ticket(
    settings: Settings, token: object, user_id: str, event_id: int
) -> tuple[str, int, str] | None:
    """(where, place, epoch) of a place in line to restore, None when the ticket holds
    no such place (an admitted fan's ticket among them: see :func:`read_queue_ticket`);
    400 for a ticket we did not sign, 403 for someone else's or another event's."""
    ticket = read_queue_ticket(settings, token, user_id, event_id)
    if ticket is None or ticket[0] not in RESTORABLE:
        return None
    return ticket


def read_queue_ticket(
    settings: Settings, token: object, user_id: str, event_id: int
) -> tuple[str, int, str] | None:
    """(where, place, epoch) to restore, a place in line (``where`` in RESTORABLE) or an
    admitted fan's session (ADMITTED, place: when it ends, ms); None when the ticket holds
    nothing to restore; 400 for a ticket we did not sign, 403 for someone else's or
    another event's."""
    if not isinstance(token, str) or not token:
        raise validation_error("queue_ticket must be the string a join returned.")
    claims = _claims(token, settings.queue_ticket_secret)
    if claims is None:
        claims = _claims(token, admitted_key(settings))
        if claims is not None and claims["where"] != ADMITTED:
            claims = None  # each key signs its own kind only
    elif claims["where"] == ADMITTED:
        claims = None  # a session under the line key: what a taken gateway would forge
    if claims is None:
        raise validation_error("queue_ticket is not valid (expired or not ours); join without it.")
    if claims["sub"] != user_id or claims["event_id"] != event_id:
        raise Problem(403, "queue_ticket_invalid", "This queue ticket is for another fan or event.")
    place, where, epoch = claims["place"], claims["where"], claims["epoch"]
    if where not in RESTORABLE and where != ADMITTED:
        return None
    if not isinstance(place, int) or isinstance(place, bool) or not isinstance(epoch, str):
        return None
    return where, place, epoch


def _claims(token: str, key: str) -> dict[str, object] | None:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            options={"require": ["sub", "event_id", "where", "place", "epoch", "exp"]},
        )
    except jwt.InvalidTokenError:
        return None
    return claims

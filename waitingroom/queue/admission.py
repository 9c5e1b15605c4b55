"""Admission tokens: JWTs the waiting room signs (claims ``sub``, ``event_id``, ``exp``,
and ``epoch``: the queue state in Redis the session was granted in), valid for one user and
one event. Under RS256 they are signed with the platform's key and verified with its
public keys (ticketing.keys), so the booking front doors hold no signing secret; under
HS256, with ``TICKETING_ADMISSION_SECRET``.

The epoch lets a session outlive Redis losing the queue: a reserve whose token names an
epoch the queue no longer has may restore the session it was issued for (see
:meth:`waitingroom.queue.port.QueuePort.reserve_refusal`). A token without one (issued
before it was signed in) is checked as it always was."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from ticketing.config import Settings
from ticketing.keys import platform_signer, platform_signs_rs256, public_keys
from ticketing.problems import Problem

_LEEWAY_SECONDS = 5
# RS256 signing costs ~1 ms; an admitted fan's every status poll carries their token, the
# same one each time (no iat), so the last tokens signed are kept.
_SIGNED_SIZE = 10_000
_signed: OrderedDict[tuple[str, str, int, int, str], str] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Admission:
    """What a valid admission token says beyond its fan and event: when its session ends
    (unix seconds) and the queue epoch it was issued in (None: a token from before epochs
    were signed in, which can restore nothing)."""

    expires: int
    epoch: str | None


def _invalid(detail: str) -> Problem:
    return Problem(403, "admission_invalid", detail)


def verify_admission(settings: Settings, token: str, user_id: str, event_id: int) -> Admission:
    """What ``token`` says when it admits ``user_id`` to ``event_id``; else 403."""
    try:
        key: Any = settings.admission_secret
        algorithm = "HS256"
        if platform_signs_rs256(settings):
            algorithm = "RS256"
            key = public_keys(settings.jwt_public_key).get(_kid(token))
            if key is None:
                raise jwt.InvalidTokenError("no key for this token")
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={"require": ["sub", "event_id", "exp"]},
            leeway=_LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError as exc:
        raise _invalid("The admission token has expired; rejoin the queue.") from exc
    except jwt.InvalidTokenError as exc:
        raise _invalid("The admission token is not valid.") from exc
    if claims["sub"] != user_id:
        raise _invalid("The admission token was issued to someone else.")
    if claims["event_id"] != event_id or isinstance(claims["event_id"], bool):
        raise _invalid("The admission token is for another event.")
    epoch = claims.get("epoch")
    if epoch is not None and (not isinstance(epoch, str) or not epoch):
        raise _invalid("The admission token is not valid.")
    expires = claims["exp"]  # a number: PyJWT checked it
    return Admission(int(expires), epoch)


def _kid(token: str) -> str:
    kid = jwt.get_unverified_header(token).get("kid")
    if not isinstance(kid, str):
        raise jwt.InvalidTokenError("no kid")
    return kid


def _sign(settings: Settings, claims: dict[str, Any]) -> str:
    if platform_signs_rs256(settings):
        return platform_signer(settings).sign(claims)
    return jwt.encode(claims, settings.admission_secret, algorithm="HS256")


def issue_admission(
    settings: Settings, user_id: str, event_id: int, ttl: int, epoch: str = ""
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "event_id": event_id, "iat": now, "exp": now + ttl}
    if epoch:
        claims["epoch"] = epoch
    return _sign(settings, claims)


def admission_for_session(
    settings: Settings, user_id: str, event_id: int, expires: int, epoch: str = ""
) -> str:
    """The token of a queue session ending at ``expires`` (unix seconds), granted in the
    queue's ``epoch`` (its ``state`` hash's; "" leaves the claim out). No ``iat``: every
    process derives the very same token from the session kept in Redis and the epoch it
    is in, so none is stored."""
    claims: dict[str, Any] = {"sub": user_id, "event_id": event_id, "exp": expires}
    if epoch:
        claims["epoch"] = epoch
    if not platform_signs_rs256(settings):
        return _sign(settings, claims)
    signer = platform_signer(settings)
    memo = (signer.kid, user_id, event_id, expires, epoch)
    token = _signed.get(memo)
    if token is None:
        token = signer.sign(claims)
        if len(_signed) >= _SIGNED_SIZE:
            _signed.popitem(last=False)
        _signed[memo] = token
    return token

"""Admission tokens: HS256 JWTs the waiting room signs with its own secret (claims ``sub``,
``event_id``, ``exp``), valid for one user and one event."""

from __future__ import annotations

import time

import jwt

from ticketing.config import Settings
from ticketing.problems import Problem

_LEEWAY_SECONDS = 5


def _invalid(detail: str) -> Problem:
    return Problem(403, "admission_invalid", detail)


def verify_admission(settings: Settings, token: str, user_id: str, event_id: int) -> None:
    """Return quietly when ``token`` admits ``user_id`` to ``event_id``; else 403."""
    try:
        claims = jwt.decode(
            token,
            settings.admission_secret,
            algorithms=["HS256"],
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


def issue_admission(settings: Settings, user_id: str, event_id: int, ttl: int) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "event_id": event_id, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, settings.admission_secret, algorithm="HS256")


def admission_for_session(settings: Settings, user_id: str, event_id: int, expires: int) -> str:
    """The token of a queue session ending at ``expires`` (unix seconds). No ``iat``: every
    process derives the very same token from the session kept in Redis, so none is stored."""
    claims = {"sub": user_id, "event_id": event_id, "exp": expires}
    return jwt.encode(claims, settings.admission_secret, algorithm="HS256")

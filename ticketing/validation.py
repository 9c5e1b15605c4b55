"""Decoding of request input the models do not cover: path ids and list cursors.

Every failure is the route's 404 (an id) or a ``400 validation_error`` naming the
parameter (a cursor), raised before any work.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from ticketing.problems import Problem, validation_error

MAX_ID = 2**63 - 1


def parse_id(raw: str, not_found: Problem) -> int:
    """A path id. Unknown and malformed ids are the same 404 to the client."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise not_found
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise not_found
    return value


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(raw: str | None, shape: tuple[type, ...]) -> list[Any] | None:
    """A ``cursor`` parameter's parts, checked against the expected element types; None
    when there is none (the first page)."""
    if raw is None or raw == "":
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != len(shape)
        or not all(
            isinstance(v, t) and not isinstance(v, bool)
            for v, t in zip(decoded, shape, strict=True)
        )
    ):
        raise bad_cursor()
    return decoded


def bad_cursor() -> Problem:
    """The refusal of a cursor that no page handed out."""
    detail = "cursor is not valid."
    return validation_error(
        detail, parameter="cursor", errors=[{"in": "query", "name": "cursor", "message": detail}]
    )

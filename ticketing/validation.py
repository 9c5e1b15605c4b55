"""Decoding of request input: JSON bodies, query parameters, ids and cursors.

Every failure is a ``400 validation_error`` naming the parameter, raised before any work.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiohttp import web

from ticketing.problems import Problem, validation_error

MAX_ID = 2**63 - 1


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; anything else is a validation error."""
    try:
        body = await request.json(loads=orjson.loads)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise validation_error("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise validation_error("The request body must be a JSON object.")
    return body


def parse_id(raw: str, not_found: Problem) -> int:
    """A path id. Unknown and malformed ids are the same 404 to the client."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise not_found
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise not_found
    return value


def query_int(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise validation_error(f"{name} must be an integer.", parameter=name) from exc
    if not minimum <= value <= maximum:
        raise validation_error(f"{name} must be between {minimum} and {maximum}.", parameter=name)
    return value


def query_optional_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise validation_error(f"{name} must be a positive integer id.", parameter=name)
    return int(raw)


def parse_date(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise validation_error(f"{name} must be a date (YYYY-MM-DD).", parameter=name) from exc


def query_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    return parse_date(raw, name)


def parse_timestamp(value: Any, name: str) -> datetime:
    """An RFC 3339 timestamp from a JSON body, returned in UTC; it must carry an offset."""
    if not isinstance(value, str):
        raise validation_error(f"{name} must be an RFC 3339 timestamp.", field=name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise validation_error(f"{name} must be an RFC 3339 timestamp.", field=name) from exc
    if parsed.tzinfo is None:
        raise validation_error(f"{name} must include a UTC offset (e.g. Z).", field=name)
    return parsed.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(request: web.Request, shape: tuple[type, ...]) -> list[Any] | None:
    """The ``cursor`` query parameter, checked against the expected element types."""
    raw = request.query.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise validation_error("cursor is not valid.", parameter="cursor") from exc
    if (
        not isinstance(decoded, list)
        or len(decoded) != len(shape)
        or not all(
            isinstance(v, t) and not isinstance(v, bool)
            for v, t in zip(decoded, shape, strict=True)
        )
    ):
        raise validation_error("cursor is not valid.", parameter="cursor")
    return decoded

"""The one validation path: a request's body and query parameters through their models.

Every refusal is the same ``400 validation_error`` problem (:class:`ValidationProblem`),
naming each field or parameter and why, raised before any work, so nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ticketing.api.shapes import NO_NUL
from ticketing.problems import Problem

ModelT = TypeVar("ModelT", bound=BaseModel)

# Sentences for the refusals a model gives most, in the words the API has always used.
_MESSAGES = {
    "missing": "{name} is required.",
    "extra_forbidden": "{name} is not a known field.",
    "int_type": "{name} must be an integer.",
    "int_parsing": "{name} must be an integer.",
    "int_from_float": "{name} must be an integer.",
    "float_type": "{name} must be a number.",
    "float_parsing": "{name} must be a number.",
    "bool_type": "{name} must be true or false.",
    "bool_parsing": "{name} must be true or false.",
    "string_type": "{name} must be a string.",
    "list_type": "{name} must be a list.",
    "dict_type": "{name} must be an object.",
    "model_type": "{name} must be an object.",
    "greater_than_equal": "{name} must be at least {ge}.",
    "less_than_equal": "{name} must be at most {le}.",
    "greater_than": "{name} must be more than {gt}.",
    "less_than": "{name} must be less than {lt}.",
    "string_too_short": "{name} must be at least {min_length} characters long.",
    "string_too_long": "{name} must be at most {max_length} characters long.",
    "too_short": "{name} must have at least {min_length} items.",
    "too_long": "{name} must have at most {max_length} items.",
    "date_type": "{name} must be a date (YYYY-MM-DD).",
    "date_parsing": "{name} must be a date (YYYY-MM-DD).",
    "date_from_datetime_parsing": "{name} must be a date (YYYY-MM-DD).",
    "date_from_datetime_inexact": "{name} must be a date (YYYY-MM-DD).",
    "datetime_type": "{name} must be an RFC 3339 timestamp.",
    "datetime_parsing": "{name} must be an RFC 3339 timestamp.",
    "datetime_from_date_parsing": "{name} must be an RFC 3339 timestamp.",
    "timezone_aware": "{name} must include a UTC offset (e.g. Z).",
    "enum": "{name} must be one of {expected}.",
    "literal_error": "{name} must be one of {expected}.",
}


async def read_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request body as ``model``: JSON, an object, every field valid, none unknown."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise refusal(exc.errors(include_url=False), "body") from None


def read_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """The query parameters as ``model``; the first of a repeated parameter counts."""
    given: dict[str, str] = {}
    for name, value in request.query.items():
        if value != "" and name in model.model_fields and name not in given:
            given[name] = value
    return validate_mapping(given, model, "query")


def validate_mapping(given: Mapping[str, Any], model: type[ModelT], location: str) -> ModelT:
    """``given`` (already decoded) as ``model``."""
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise refusal(exc.errors(include_url=False), location) from None


def refusal(errors: Sequence[ErrorDetails], location: str) -> Problem:
    """The ``400 validation_error`` problem for a model's errors at ``location``."""
    reasons = [_reason(error, location) for error in errors]
    first = reasons[0]
    problem = Problem(400, "validation_error", first["message"], errors=reasons)
    if first["name"]:
        problem.extra["field" if location == "body" else "parameter"] = first["name"]
    return problem


def _reason(error: ErrorDetails, location: str) -> dict[str, str]:
    name = _dotted(error["loc"])
    kind = error["type"]
    context = dict(error.get("ctx") or {})
    if kind == "json_invalid":
        message = "The request body is not valid JSON."
    elif kind in ("model_type", "dict_type") and not name and location == "body":
        message = "The request body must be a JSON object."
    elif kind == "string_pattern_mismatch" and context.get("pattern") == NO_NUL:
        message = f"{name} must not contain NUL characters."
    elif kind in _MESSAGES and name:
        message = _MESSAGES[kind].format(name=name, **context)
    else:
        # Custom refusals (a model validator's own sentence) and the rarer pydantic ones.
        message = str(error["msg"]).removeprefix("Value error, ")
        if name:
            message = f"{name}: {message}"
        if not message.endswith("."):
            message += "."
    return {"in": location, "name": name, "message": message}


def _dotted(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name

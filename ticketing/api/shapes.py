"""The base models every request and reply shape derives from, and the small types they
share (ids, text without NUL characters, path and header parameters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ID = 2**63 - 1
# No text field takes a NUL character: PostgreSQL cannot store one, and no name needs it.
NO_NUL = r"^[^\x00]*$"

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


# Text of any length with no NUL character; give lengths with Field:
#     name: Annotated[Text, Field(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]


class Body(BaseModel):
    """A JSON request body: strict types (no "5" for 5, no true for 1), no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """A route's query parameters, read from strings (so "20" is 20). Unknown parameters
    are ignored and an empty one counts as absent."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Shape(BaseModel):
    """A reply's JSON shape. Handlers build their JSON themselves; the shape describes it in
    the document, and the tests hold every reply to it. Every field the reply carries is
    named (no additional properties)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemFields(BaseModel):
    """Members a problem document carries beside type, title, status, detail and code (for
    example ``unavailable_ticket_ids``)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Problem(ProblemFields):
    """RFC 9457 problem document, the only error shape of every service."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable snake_case error code.")


class FieldError(Shape):
    """One reason a request was refused: where (``body``, ``query``, ``header``), which
    field or parameter, and why."""

    location: str = Field(alias="in")
    name: str
    message: str


class ValidationProblem(Problem):
    """``400 validation_error``: every reason, each naming its field or parameter; ``field``
    (body) or ``parameter`` (query, header) names the first."""

    errors: list[FieldError] = Field(default_factory=list)
    field: str | None = None
    parameter: str | None = None


@dataclass(frozen=True, slots=True)
class PathId:
    """A path parameter holding an id: digits only; a malformed or unknown id is the
    route's 404, never a 400 (SPEC). With ``missing`` (the route's 404), a malformed id is
    refused right after authentication, before the query or body is looked at."""

    name: str
    description: str = ""
    maximum: int = MAX_ID
    missing: Callable[[], Exception] | None = None

    def check(self, raw: str) -> None:
        """Raise the route's 404 when ``raw`` cannot be an id."""
        if self.missing is None:
            return
        if not (
            raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= self.maximum
        ):
            raise self.missing()

    def parameter(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "path",
            "required": True,
            "description": self.description or "A malformed or unknown id answers the route's 404.",
            "schema": {"type": "integer", "minimum": 1, "maximum": self.maximum},
        }


@dataclass(frozen=True, slots=True)
class Header:
    """A request header the route reads."""

    name: str
    description: str
    required: bool = False
    schema: tuple[tuple[str, Any], ...] = (("type", "string"),)

    def parameter(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "header",
            "required": self.required,
            "description": self.description,
            "schema": dict(self.schema),
        }

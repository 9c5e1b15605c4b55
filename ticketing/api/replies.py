"""What a route may answer, per status: a JSON shape, a problem with its codes, HTML, an
empty reply or other content. Each renders its OpenAPI response object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ticketing.api.shapes import Problem

PROBLEM_JSON = "application/problem+json"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _headers(headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {
        name: {"description": description, "schema": {"type": "string"}}
        for name, description in headers
    }


@dataclass(frozen=True)
class Reply:
    """One status a route may answer."""

    status: int
    description: str
    headers: tuple[tuple[str, str], ...] = ()

    def models(self) -> tuple[type[BaseModel], ...]:
        return ()

    def content(self) -> dict[str, Any] | None:
        return None

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"description": self.description}
        content = self.content()
        if content is not None:
            rendered["content"] = content
        if self.headers:
            rendered["headers"] = _headers(self.headers)
        return rendered


@dataclass(frozen=True)
class Ok(Reply):
    """A JSON body of ``shape``."""

    shape: type[BaseModel] | None = None

    def models(self) -> tuple[type[BaseModel], ...]:
        return (self.shape,) if self.shape is not None else ()

    def content(self) -> dict[str, Any] | None:
        schema = ref(self.shape) if self.shape is not None else {}
        return {"application/json": {"schema": schema}}


@dataclass(frozen=True)
class Problems(Reply):
    """A problem document whose ``code`` is one of ``codes``; ``extra`` describes members
    beyond the standard five."""

    codes: tuple[str, ...] = ()
    extra: type[BaseModel] | None = None

    def models(self) -> tuple[type[BaseModel], ...]:
        return (Problem,) if self.extra is None else (Problem, self.extra)

    def content(self) -> dict[str, Any] | None:
        parts: list[dict[str, Any]] = [ref(Problem)]
        if self.codes:
            parts.append({"properties": {"code": {"enum": list(self.codes)}}})
        if self.extra is not None:
            parts.append(ref(self.extra))
        return {PROBLEM_JSON: {"schema": {"allOf": parts}}}

    def render(self) -> dict[str, Any]:
        rendered = super().render()
        codes = ", ".join(self.codes)
        if codes and not self.description.startswith(codes):
            rendered["description"] = f"{codes}: {self.description}" if self.description else codes
        return rendered


@dataclass(frozen=True)
class Html(Reply):
    """An HTML page."""

    def content(self) -> dict[str, Any] | None:
        return {"text/html": {"schema": {"type": "string"}}}


@dataclass(frozen=True)
class Raw(Reply):
    """Content that is not JSON (scripts, styles, metrics text)."""

    media_types: tuple[str, ...] = field(default=("application/octet-stream",))

    def content(self) -> dict[str, Any] | None:
        return {media: {"schema": {"type": "string"}} for media in self.media_types}


@dataclass(frozen=True)
class Empty(Reply):
    """No body (204, 304, a websocket's 101)."""

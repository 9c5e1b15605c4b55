"""One reply held to an OpenAPI 3.1 document: is its route documented, its status one the
operation lists, its content type one that status describes, and its JSON body valid
against that schema (JSON Schema 2020-12, the document's ``$ref``s resolved in place)?

Formats are annotations only (no format checker): the document's ``date-time`` is RFC 3339,
which the services write with a ``Z``, and a checker stricter or looser than the clients
would only add noise. Request bodies are not checked: the services refuse those themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:ticketing:openapi"
# Scraped on each service's own port, never routed by the gateway: not part of the API.
NOT_PUBLIC = frozenset({"/metrics"})
EXCERPT_CHARS = 200
MAX_SCHEMA_ERRORS = 5


@dataclass(frozen=True)
class Violation:
    """One way one reply differs from the document."""

    method: str
    path: str
    status: int
    what: str
    body: str = ""

    @property
    def request(self) -> str:
        """``METHOD /path``, without the query string."""
        return f"{self.method} {urlsplit(self.path).path}"

    def __str__(self) -> str:
        line = f"{self.method} {self.path} -> {self.status}: {self.what}"
        return f"{line}\n      body: {self.body}" if self.body else line


@dataclass(frozen=True)
class Template:
    """A documented path, split for matching: literal segments and ``{parameters}``."""

    path: str
    segments: tuple[str, ...]

    @classmethod
    def of(cls, path: str) -> Template:
        return cls(path, tuple(path.strip("/").split("/")))

    def matches(self, segments: tuple[str, ...]) -> bool:
        if len(segments) != len(self.segments):
            return False
        return all(
            (_is_parameter(mine) and given != "") or mine == given
            for mine, given in zip(self.segments, segments, strict=True)
        )

    @cached_property
    def preference(self) -> tuple[int, ...]:
        """Literal segments beat parameters, leftmost first: /booking/reserve before
        /booking/{ticket_id}."""
        return tuple(int(_is_parameter(segment)) for segment in self.segments)


def _is_parameter(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def excerpt(body: bytes | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace").replace("\n", " ")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


class Contract:
    """An OpenAPI document's operations, ready to judge replies."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.templates = [Template.of(path) for path in document["paths"]]
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The documented path and operation a request of ``method`` on the concrete
        ``path`` (query string allowed) reaches, or None."""
        concrete = urlsplit(path).path
        segments = tuple(unquote(part) for part in concrete.strip("/").split("/"))
        found = sorted(
            (t for t in self.templates if t.matches(segments)), key=lambda t: t.preference
        )
        for template in found:
            item = self.document["paths"][template.path]
            if method.lower() in item:
                return template.path, item[method.lower()]
        return None

    def check(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str | None,
        body: bytes | None,
    ) -> list[Violation]:
        """What is wrong with one reply. ``content_type`` None: the reply had none;
        ``body`` None: not seen (a websocket's), so checked no further than its status and
        any content type."""
        method = method.upper()
        if urlsplit(path).path in NOT_PUBLIC:
            return []

        def violation(what: str) -> list[Violation]:
            return [Violation(method, path, status, what, excerpt(body))]

        lookup = "GET" if method == "HEAD" else method
        found = self.operation(lookup, path)
        if found is None:
            return violation(f"{lookup} on this path is not documented")
        template, operation = found
        responses = operation.get("responses", {})
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None
        )
        if key is None:
            listed = ", ".join(sorted(responses))
            return violation(
                f"status {status} is not documented for {lookup} {template} (documented: {listed})"
            )
        content = responses[key].get("content")
        if not content:
            return violation("a body where the document describes none") if body else []
        if method == "HEAD" or (body is None and content_type is None):
            return []
        media = media_type(content_type or "")
        documented = {media_type(name): name for name in content}
        if media not in documented:
            listed = ", ".join(sorted(documented))
            return violation(
                f"content type {content_type or '(none)'!r} is not documented "
                f"(documented: {listed})"
            )
        if body is None or not _is_json(media):
            return []
        try:
            instance = json.loads(body)
        except ValueError:
            return violation(f"the body is not JSON, as {media} says")
        pointer = (
            "paths",
            template,
            lookup.lower(),
            "responses",
            key,
            "content",
            documented[media],
            "schema",
        )
        return [
            Violation(method, path, status, what, excerpt(body))
            for what in self._schema_errors(pointer, instance)
        ]

    def _schema_errors(self, pointer: tuple[str, ...], instance: Any) -> list[str]:
        validator = self._validator(pointer)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        found = [
            f"schema: at {_where(error.absolute_path)}: {error.message}"
            for error in errors[:MAX_SCHEMA_ERRORS]
        ]
        if len(errors) > MAX_SCHEMA_ERRORS:
            found.append(f"schema: and {len(errors) - MAX_SCHEMA_ERRORS} more errors")
        return found

    def _validator(self, pointer: tuple[str, ...]) -> Draft202012Validator:
        """A validator of the schema at ``pointer``, reached by reference into the document
        so that its ``#/components/schemas/...`` references resolve against the document."""
        fragment = "".join(
            "/" + quote(part.replace("~", "~0").replace("/", "~1"), safe="") for part in pointer
        )
        validator = self._validators.get(fragment)
        if validator is None:
            schema = {"$ref": f"{DOCUMENT_URI}#{fragment}"}
            validator = Draft202012Validator(schema, registry=self.registry)
            self._validators[fragment] = validator
        return validator


def _where(path: Any) -> str:
    parts = list(path)
    return "/".join(str(part) for part in parts) if parts else "the top level"

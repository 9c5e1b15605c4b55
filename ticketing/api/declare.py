"""Route declarations: one decorator registers a handler with aiohttp and describes it.

    api = Api()

    @api.post("/booking/reserve", summary="Hold seats", body=ReserveBody, auth=USER,
              replies=[Ok(201, "The hold", shape=Hold), BAD_REQUEST, ...])
    async def reserve(request: web.Request, body: ReserveBody) -> web.Response: ...

The handler receives its query (``query=``) and body (``body=``) already validated by the
very models the document describes, after the route's authentication (``auth=``), so an
anonymous request is told 401 before anything about its body.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ticketing.api.replies import Reply
from ticketing.api.schema import PlainSchema
from ticketing.api.shapes import Header, PathId
from ticketing.api.validate import read_body, read_query

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Endpoint = Callable[..., Awaitable[web.StreamResponse]]
Authenticate = Callable[[web.Request], object]


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the document shows it."""

    method: str
    path: str
    summary: str
    replies: tuple[Reply, ...]
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_ids: tuple[PathId, ...] = ()
    headers: tuple[Header, ...] = ()
    secured: bool = False
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def models(self) -> list[type[BaseModel]]:
        found = [self.body] if self.body is not None else []
        for reply in self.replies:
            found.extend(reply.models())
        return found

    def parameters(self) -> list[dict[str, Any]]:
        params = [path_id.parameter() for path_id in self.path_ids]
        if self.query is not None:
            params.extend(query_parameters(self.query))
        params.extend(header.parameter() for header in self.headers)
        return params

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"summary": self.summary}
        if self.description:
            rendered["description"] = self.description
        if self.tags:
            rendered["tags"] = list(self.tags)
        parameters = self.parameters()
        if parameters:
            rendered["parameters"] = parameters
        if self.body is not None:
            rendered["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{self.body.__name__}"}
                    }
                },
            }
        if self.secured:
            rendered["security"] = [{"bearer": []}]
        rendered["responses"] = {
            str(reply.status): reply.render()
            for reply in sorted(self.replies, key=lambda r: r.status)
        }
        rendered.update(self.extra)
        return rendered


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query model's fields as OpenAPI parameters."""
    schema = model.model_json_schema(schema_generator=PlainSchema)
    required = set(schema.get("required", ()))
    params = []
    definitions = schema.get("$defs", {})
    for name, described in schema["properties"].items():
        prop = _plain(described, definitions)
        description = prop.pop("description", "")
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            param["description"] = description
        param["schema"] = prop
        params.append(param)
    return params


def _plain(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's wrapping: no title, a referenced enum
    inlined, ``X | None`` as X (an absent parameter is how a query says None)."""
    prop = dict(prop)
    prop.pop("title", None)
    if prop.get("default", 0) is None:
        del prop["default"]
    options = prop.pop("anyOf", None)
    if options is not None:
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
    target = prop.pop("$ref", None)
    if target is not None:
        inlined = dict(definitions[target.rsplit("/", 1)[1]])
        inlined.pop("title", None)
        prop = {**inlined, **prop}
    return prop


class Api:
    """A service's routes: each handler registered with aiohttp and described once."""

    def __init__(self) -> None:
        self.table = web.RouteTableDef()
        self.operations: list[Operation] = []

    def get(self, path: str, **declared: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("GET", path, **declared)

    def post(self, path: str, **declared: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("POST", path, **declared)

    def patch(self, path: str, **declared: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PATCH", path, **declared)

    def delete(self, path: str, **declared: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("DELETE", path, **declared)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        replies: Sequence[Reply],
        description: str = "",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        path_ids: Sequence[PathId] = (),
        headers: Sequence[Header] = (),
        auth: Authenticate | None = None,
        tags: Sequence[str] = (),
        extra: dict[str, Any] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        operation = Operation(
            method=method,
            path=path,
            summary=summary,
            replies=tuple(replies),
            description=description,
            body=body,
            query=query,
            path_ids=tuple(path_ids),
            headers=tuple(headers),
            secured=auth is not None,
            tags=tuple(tags),
            extra=extra or {},
        )

        def register(handler: Endpoint) -> Endpoint:
            self.operations.append(operation)
            self.table.route(method, routable(path))(_validated(handler, operation, auth))
            return handler

        return register

    def described(self, operation: Operation) -> None:
        """Describe a route registered some other way (a websocket, static files)."""
        self.operations.append(operation)

    def served(self, handler: Handler, operation: Operation) -> None:
        """Serve ``handler`` as it is, with no validation around it, described by
        ``operation``: for a route that reads its own input."""
        self.described(operation)
        self.table.route(operation.method, routable(operation.path))(handler)


_PARAMETER = re.compile(r"\{(\w+)\}")


def routable(path: str) -> str:
    """``path`` as aiohttp should match it: a parameter takes any segment, braces included
    (aiohttp's default refuses ``{`` and ``}``, and such a request would get the generic
    404 instead of the route's own, say ``event_not_found``)."""
    return _PARAMETER.sub(r"{\1:[^/]+}", path)


def _validated(handler: Endpoint, operation: Operation, auth: Authenticate | None) -> Handler:
    body_model, query_model = operation.body, operation.query
    path_ids = [path_id for path_id in operation.path_ids if path_id.missing is not None]
    if body_model is None and query_model is None and auth is None and not path_ids:
        return handler

    async def endpoint(request: web.Request) -> web.StreamResponse:
        # Who may ask (401, 403), then for what (the route's 404), then how (400).
        if auth is not None:
            auth(request)
        for path_id in path_ids:
            path_id.check(request.match_info[path_id.name])
        inputs: dict[str, BaseModel] = {}
        if query_model is not None:
            inputs["query"] = read_query(request, query_model)
        if body_model is not None:
            inputs["body"] = await read_body(request, body_model)
        return await handler(request, **inputs)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    endpoint.__doc__ = handler.__doc__
    return endpoint

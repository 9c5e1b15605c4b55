"""The OpenAPI 3.1 document of a service's declared routes, and the gateway's merge of the
services' documents."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ticketing.api.declare import Api, Operation
from ticketing.api.schema import PlainSchema
from ticketing.api.shapes import FieldError, Problem, ValidationProblem

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
_ALWAYS: tuple[type[BaseModel], ...] = (Problem, ValidationProblem, FieldError)


def document(
    title: str,
    description: str,
    apis: Sequence[Api],
    servers: Sequence[str] = ("http://127.0.0.1:8080",),
    version: str = "1.0.0",
) -> dict[str, Any]:
    """The document of every operation the ``apis`` declare."""
    operations = [operation for api in apis for operation in api.operations]
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        methods = paths.setdefault(operation.path, {})
        method = operation.method.lower()
        if method in methods:
            raise ValueError(f"{operation.method} {operation.path} is declared twice")
        methods[method] = operation.render()
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": url} for url in servers],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {"schemas": schemas(operations), "securitySchemes": SECURITY_SCHEMES},
    }


def schemas(operations: Iterable[Operation]) -> dict[str, Any]:
    """The JSON Schemas of every model the operations name, and of the models those use."""
    models: dict[str, type[BaseModel]] = {model.__name__: model for model in _ALWAYS}
    for operation in operations:
        for model in operation.models():
            known = models.setdefault(model.__name__, model)
            if known is not model:
                raise ValueError(f"two models are named {model.__name__}")
    _, top = models_json_schema(
        [(model, "validation") for model in models.values()],
        ref_template="#/components/schemas/{model}",
        schema_generator=PlainSchema,
    )
    found: dict[str, Any] = top.get("$defs", {})
    return {name: found[name] for name in sorted(found)}


def merge(title: str, description: str, documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One document of several services' documents: their paths side by side, their schemas
    together. A route every service serves alike (``/healthz``) appears once; a route two
    services describe differently, or one schema name that means two things, is an error,
    not a silent choice."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for doc in documents:
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                known = paths.setdefault(path, {}).get(method)
                if known is not None and known != operation:
                    raise ValueError(f"{method.upper()} {path} is described twice")
                paths[path][method] = operation
        for name, schema in doc["components"]["schemas"].items():
            if components.setdefault(name, schema) != schema:
                raise ValueError(f"schema {name} differs between services")
    first = documents[0]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {**first["info"], "title": title, "description": description},
        "servers": first["servers"],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {
            "schemas": {name: components[name] for name in sorted(components)},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }

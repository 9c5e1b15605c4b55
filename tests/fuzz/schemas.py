"""JSON Schema to hypothesis strategies, for the subset the gateway's OpenAPI document uses
(deploy/openapi.py): instances a schema accepts (:meth:`Schemas.valid`) and instances it
refuses (:meth:`Schemas.invalid`: wrong types, out of range, unknown fields, missing
required ones), so that both a service's answers and its refusals are exercised.

Every drawn instance is checked against the schema itself (jsonschema, with the document's
formats checked too): a strategy that drifts from what the schema says is rejected by the
filter rather than sent as the wrong kind of example.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

# Strings a UTF-8 body or query string can carry: every code point but the surrogates.
CHARACTERS = st.characters(codec="utf-8")
# Arrays and strings without an upper bound stay small: size is the nasty tests' subject.
SPARE_ITEMS = 4
SPARE_CHARS = 40
NEGATED_CLASS_STAR = re.compile(r"\^\[\^[^\]]+\]\*\$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or (bool(date.fromisoformat(value)) and len(value) == 10)


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # RFC 3339: a time and an offset, always (the services refuse a naive time).
    return not isinstance(value, str) or (
        "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None
    )


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or (bool(uuid.UUID(value)) and len(value) == 36)


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(CHARACTERS, max_size=SPARE_CHARS),
    )


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(CHARACTERS, max_size=10), inner, max_size=3),
        ),
        max_leaves=8,
    )


WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
    "string": st.text(CHARACTERS, max_size=SPARE_CHARS),
    "array": st.lists(json_scalars(), max_size=3),
    "object": st.dictionaries(st.text(CHARACTERS, max_size=10), json_scalars(), max_size=3),
}


def inline(node: Any, components: dict[str, Any]) -> Any:
    """The schema with every ``#/components/schemas/...`` reference replaced by its target
    (the document's components are not recursive), so that any part of it stands alone."""
    if isinstance(node, list):
        return [inline(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: inline(value, components) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = inline(components[ref.rsplit("/", 1)[-1]], components)
        out = {**target, **out}
    return out


def _types(schema: dict[str, Any]) -> list[str]:
    given = schema.get("type")
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


class Schemas:
    """Strategies for the schemas of one OpenAPI document (its components resolved)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components: dict[str, Any] = document.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        resolved: dict[str, Any] = inline(schema, self.components)
        return resolved

    def is_valid(self, schema: dict[str, Any], instance: Any) -> bool:
        return bool(_validator(_frozen(self.resolve(schema))).is_valid(instance))

    def valid(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        resolved = self.resolve(schema)
        check = _validator(_frozen(resolved))
        return _valid(resolved).filter(check.is_valid)

    def invalid(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        resolved = self.resolve(schema)
        check = _validator(_frozen(resolved))
        return _invalid(resolved).filter(lambda instance: not check.is_valid(instance))


def _frozen(schema: dict[str, Any]) -> str:
    import json

    return json.dumps(schema, sort_keys=True)


@lru_cache(maxsize=512)
def _validator(frozen: str) -> Draft202012Validator:
    import json

    return Draft202012Validator(json.loads(frozen), format_checker=FORMATS)


def _valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}
    for part in schema.get("allOf", []):
        base = _merge(base, part)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        others = [set(b.get("required", [])) for b in branches]
        return st.one_of(
            [
                _valid(_merge(base, branch, exclude=set().union(*others) - others[i]))
                for i, branch in enumerate(branches)
            ]
        )
    types = _types(base)
    if not types:
        return _typed("object", base) if "properties" in base else json_values()
    return st.one_of([_typed(kind, base) for kind in types])


def _merge(
    base: dict[str, Any], extra: dict[str, Any], exclude: set[str] | None = None
) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    merged["required"] = sorted(set(base.get("required", [])) | set(extra.get("required", [])))
    if exclude:
        merged["properties"] = {
            k: v for k, v in merged.get("properties", {}).items() if k not in exclude
        }
    return merged


def _typed(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = schema.get("minimum")
        if "exclusiveMinimum" in schema:
            low = int(schema["exclusiveMinimum"]) + 1
        return st.integers(low, schema.get("maximum"))
    if kind == "number":
        return st.floats(
            schema.get("minimum", schema.get("exclusiveMinimum")),
            schema.get("maximum"),
            exclude_min="exclusiveMinimum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "string":
        return _string(schema)
    if kind == "array":
        low = schema.get("minItems", 0)
        items = _valid(schema.get("items", {}))
        return st.lists(
            items,
            min_size=low,
            max_size=min(schema.get("maxItems", low + SPARE_ITEMS), low + SPARE_ITEMS),
            unique_by=_frozen if schema.get("uniqueItems") else None,
        )
    return _object(schema)


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", low + SPARE_CHARS)
    fmt = schema.get("format")
    if fmt == "date":
        return st.dates().map(date.isoformat)
    if fmt == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(
            lambda moment: moment.isoformat().replace("+00:00", "Z")
        )
    if fmt == "uuid":
        return st.uuids().map(str)
    pattern = schema.get("pattern")
    if pattern is None:
        return st.text(CHARACTERS, min_size=low, max_size=min(high, low + SPARE_CHARS))
    compiled = re.compile(pattern)
    if NEGATED_CLASS_STAR.fullmatch(pattern):
        # "^[^\x00]*$" and the like: any text of the right length, the few that match.
        return st.text(CHARACTERS, min_size=low, max_size=min(high, low + SPARE_CHARS)).filter(
            lambda s: compiled.fullmatch(s) is not None
        )
    return st.from_regex(compiled, fullmatch=True, alphabet=CHARACTERS).filter(
        lambda s: low <= len(s) <= high
    )


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in properties]
    optional = {name: _valid(sub) for name, sub in properties.items() if name not in required}
    fixed = st.fixed_dictionaries(
        {name: _valid(properties[name]) for name in required}, optional=optional
    )
    extra = schema.get("additionalProperties", True)
    if extra is False or properties:
        return fixed
    values = json_scalars() if extra is True else _valid(extra)
    return st.dictionaries(st.text(CHARACTERS, max_size=10), values, max_size=3)


def _invalid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    types = set(_types(schema))
    if "integer" in types:
        types.add("number")  # an integer is a number: never "wrong" for one
    wrong = [strategy for kind, strategy in WRONG_TYPES.items() if kind not in types]
    options: list[st.SearchStrategy[Any]] = [st.one_of(wrong)] if wrong else []
    if "enum" in schema or "const" in schema:
        options.append(st.text(CHARACTERS, max_size=12))
    if types & {"integer", "number"}:
        options.append(_out_of_range(schema))
    if "string" in types:
        options.append(_bad_string(schema))
    if "array" in types:
        options.append(_bad_array(schema))
    if "object" in types or "properties" in schema:
        options.append(_bad_object(schema))
    return st.one_of(options) if options else json_values()


def _out_of_range(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [
        st.sampled_from([2**63, 2**64, 10**30, -(2**63) - 1, -1, 0, 1.5])
    ]
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    if low is not None:
        options.append(st.integers(max_value=int(low)))
    if schema.get("maximum") is not None:
        options.append(st.integers(min_value=int(schema["maximum"]) + 1))
    return st.one_of(options)


def _bad_string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(["", "\x00", "2026-13-45", "not-a-date", "\U0001f3ab" * 3])
    ]
    high = schema.get("maxLength")
    if high is not None:
        options.append(st.text(CHARACTERS, min_size=high + 1, max_size=high + 5))
    if "pattern" in schema:
        options.append(st.text(CHARACTERS, max_size=SPARE_CHARS).map(lambda s: s + "\x00"))
    return st.one_of(options)


def _bad_array(schema: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    items = schema.get("items", {})
    options = [st.lists(_invalid(items), min_size=1, max_size=3)]
    high = schema.get("maxItems")
    if high is not None:
        options.append(st.lists(_valid(items), min_size=high + 1, max_size=high + 2))
    return st.one_of(options)


def _bad_object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    valid = _valid(schema) if _types(schema) else _object(schema)
    options: list[st.SearchStrategy[dict[str, Any]]] = [st.just({})]
    if schema.get("additionalProperties") is False:
        options.append(
            st.tuples(valid, st.text(CHARACTERS, min_size=1, max_size=12), json_scalars()).map(
                lambda t: {**t[0], t[1]: t[2]}
            )
        )
    if schema.get("required"):
        options.append(
            st.tuples(valid, st.sampled_from(schema["required"])).map(
                lambda t: {k: v for k, v in t[0].items() if k != t[1]}
            )
        )
    if properties:
        names = sorted(properties)
        options.append(
            st.sampled_from(names).flatmap(
                lambda name: st.tuples(valid, _invalid(properties[name])).map(
                    lambda t: {**t[0], name: t[1]}
                )
            )
        )
    return st.one_of(options)

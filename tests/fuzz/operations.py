"""Whole requests of one documented operation, drawn from its parameters' and body's
schemas: path ids that exist, are merely well formed, huge, negative or not numbers at all;
query parameters and headers valid, invalid or left out; bodies valid, invalid or not JSON;
and who asks (no token, a fan, an admin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.fuzz.schemas import CHARACTERS, Schemas

# Hypothesis leans towards the first choice: the fan, whom most routes serve.
WHO = ("fan", "admin", "none")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Ids no row has, and ids no parser should take for one.
ODD_IDS = (
    "0",
    "-1",
    "-9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "9" * 40,
    "1.5",
    "1e3",
    "0x10",
    "+1",
    "01",
    " 1",
    "1 ",
    "\x00",
    "{1}",
    "\U0001f3ab",
    "null",
    "[]",
)
PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))


@dataclass(frozen=True)
class Pools:
    """Ids that exist in the running stack. ``events`` are the test's own (safe to change
    and join); ``read_events`` add others' events for reads only."""

    events: tuple[int, ...]
    read_events: tuple[int, ...]
    tickets: tuple[int, ...]
    static: tuple[str, ...]
    # Body fields naming a row, and rows of the test's own that they may name.
    body_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    who: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def __str__(self) -> str:
        body = "" if self.body is None else f" body={self.body[:120]!r}"
        headers = f" headers={self.headers}" if self.headers else ""
        return f"{self.method} {self.path} as {self.who}{headers}{body}"


def operation_requests(
    schemas: Schemas, method: str, template: str, operation: dict[str, Any], pools: Pools
) -> st.SearchStrategy[Request]:
    """Requests of ``method`` on ``template`` as the document's ``operation`` describes
    it, and as it does not."""
    method = method.upper()
    parameters = operation.get("parameters", [])
    path = st.fixed_dictionaries(
        {p["name"]: _path_value(schemas, p, method, pools) for p in parameters if p["in"] == "path"}
    ).map(lambda values: _fill(template, values))
    query = st.lists(
        st.one_of(
            [
                _pairs(p["name"], _sometimes(schemas, p["schema"]))
                for p in parameters
                if p["in"] == "query"
            ]
            + [_pairs("unknown_" + name, st.text(CHARACTERS, max_size=8)) for name in "ab"]
        ),
        max_size=4,
    ).map(lambda groups: [pair for group in groups for pair in group])
    headers = st.fixed_dictionaries(
        {},
        optional={
            p["name"]: _sometimes(schemas, p["schema"])
            .map(lambda v: _query_texts(v)[0])
            .filter(_header_safe)
            for p in parameters
            if p["in"] == "header"
        },
    )
    body = _body(schemas, operation.get("requestBody"), pools)
    return st.builds(
        lambda path, query, who, headers, body: Request(
            method, path + _query_string(query), who, headers, body
        ),
        path,
        query,
        st.sampled_from(WHO),
        headers,
        body,
    )


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _path_value(
    schemas: Schemas, parameter: dict[str, Any], method: str, pools: Pools
) -> st.SearchStrategy[str]:
    schema = parameter["schema"]
    name = parameter["name"]
    odd = st.sampled_from(ODD_IDS)
    if schema.get("type") == "integer":
        known = {
            "event_id": pools.events if method in MUTATING else pools.read_events,
            "ticket_id": pools.tickets,
        }.get(name, ())
        options = [st.integers(1, 2**63 - 1), odd]
        if known:
            options.insert(0, st.sampled_from(known))
        raw = st.one_of(options).map(str)
    elif schema.get("format") == "uuid":
        raw = st.one_of(st.uuids().map(str), odd, st.text(CHARACTERS, min_size=1, max_size=40))
    else:
        raw = st.one_of(
            st.sampled_from(pools.static), st.text(CHARACTERS, min_size=1, max_size=40), odd
        )
    # "." and ".." are not names: the client and nginx resolve them to another path.
    return raw.map(lambda value: quote(value, safe="")).filter(lambda v: v not in ("", ".", ".."))


def _sometimes(schemas: Schemas, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(schemas.valid(schema), schemas.invalid(schema))


def _pairs(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return values.map(lambda value: [(name, text) for text in _query_texts(value)])


def _query_texts(value: Any) -> list[str]:
    """How a drawn value goes in a query string: a list as a repeated parameter."""
    if isinstance(value, list):
        return [text for item in value for text in _query_texts(item)] or [""]
    if value is None:
        return [""]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


def _query_string(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _header_safe(text: str) -> bool:
    """What an HTTP client can put in a header at all (the nasty tests send the rest)."""
    return bool(text) and text == text.strip() and set(text) <= PRINTABLE


def _body(
    schemas: Schemas, request_body: dict[str, Any] | None, pools: Pools
) -> st.SearchStrategy[bytes | None]:
    if request_body is None:
        return st.none()
    schema = request_body.get("content", {}).get("application/json", {}).get("schema", {})
    # Valid bodies naming rows that exist: the only way past the 404s to a 201.
    existing = st.builds(
        lambda value, pick: _with_ids(value, pools.body_ids, pick),
        schemas.valid(schema),
        st.integers(0, 999),
    )
    as_json = st.one_of(_sometimes(schemas, schema), existing).map(
        lambda value: json.dumps(value).encode()
    )
    not_json = st.sampled_from(
        [b"", b"{", b"[]", b"null", b'{"a":', b"\xff\xfe", b'{"name": "\xc3\x28"}', b"\x00"]
    )
    return st.one_of(as_json, as_json, as_json, not_json, st.binary(max_size=64), st.none())


def _with_ids(value: Any, ids: dict[str, tuple[int, ...]], pick: int) -> Any:
    if not isinstance(value, dict):
        return value
    named = {
        key: ids[key][pick % len(ids[key])]
        for key in value
        if ids.get(key) and isinstance(value[key], int)
    }
    return {**value, **named}

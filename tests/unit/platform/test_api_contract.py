"""The contract machinery (ticketing/api): a declared route validates its input with the
models the document shows, refuses in one shape, and the document renders what it declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import Field, model_validator

from ticketing.api import Api, Body, Id, Ok, PathId, Query, Shape, Text, document, merge
from ticketing.api.common import BAD_REQUEST, UNAUTHORIZED
from ticketing.problems import Problem, problem_middleware


class Listing(Query):
    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20
    city: Annotated[Text, Field(max_length=100)] | None = None
    status: Literal["available", "booked"] | None = None


class Ask(Body):
    event_id: Id
    quantity: Annotated[int, Field(ge=1, le=8)] | None = None
    ticket_ids: Annotated[list[Id], Field(min_length=1, max_length=4)] | None = None

    @model_validator(mode="after")
    def one_way(self) -> Ask:
        if (self.quantity is None) == (self.ticket_ids is None):
            raise ValueError("Send exactly one of quantity or ticket_ids")
        return self


class Held(Shape):
    event_id: int
    seats: int


def _deny_anonymous(request: web.Request) -> None:
    if "Authorization" not in request.headers:
        raise Problem(401, "unauthorized", "This route needs a bearer token.")


api = Api()


@api.post(
    "/things/{thing_id}",
    summary="Hold things",
    body=Ask,
    query=Listing,
    path_ids=[
        PathId("thing_id", missing=lambda: Problem(404, "thing_not_found", "No such thing."))
    ],
    auth=_deny_anonymous,
    replies=[Ok(201, "Held", shape=Held), BAD_REQUEST, UNAUTHORIZED],
)
async def hold(request: web.Request, body: Ask, query: Listing) -> web.Response:
    seats = body.quantity or len(body.ticket_ids or ())
    return web.json_response({"event_id": body.event_id, "seats": seats}, status=201)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problem_middleware])
    app.router.add_routes(api.table)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


AUTH = {"Authorization": "Bearer x"}


async def test_a_valid_request_reaches_the_handler_with_its_models(client) -> None:
    response = await client.post(
        "/things/1?limit=5", json={"event_id": 3, "quantity": 2}, headers=AUTH
    )
    assert response.status == 201
    assert await response.json() == {"event_id": 3, "seats": 2}


@pytest.mark.parametrize(
    ("query", "body", "where", "name", "message"),
    [
        (
            "limit=0",
            b'{"event_id": 1, "quantity": 1}',
            "query",
            "limit",
            "limit must be at least 1.",
        ),
        (
            "city=a%00b",
            b'{"event_id": 1, "quantity": 1}',
            "query",
            "city",
            "city must not contain NUL characters.",
        ),
        (
            "status=gone",
            b'{"event_id": 1, "quantity": 1}',
            "query",
            "status",
            "status must be one of 'available' or 'booked'.",
        ),
        (
            "",
            b'{"event_id": "1", "quantity": 1}',
            "body",
            "event_id",
            "event_id must be an integer.",
        ),
        (
            "",
            b'{"event_id": true, "quantity": 1}',
            "body",
            "event_id",
            "event_id must be an integer.",
        ),
        ("", b'{"event_id": 1, "quantity": 1, "x": 1}', "body", "x", "x is not a known field."),
        (
            "",
            b'{"event_id": 1, "ticket_ids": [0]}',
            "body",
            "ticket_ids[0]",
            "ticket_ids[0] must be at least 1.",
        ),
        ("", b'{"event_id": 1}', "body", "", "Send exactly one of quantity or ticket_ids."),
        ("", b"[1]", "body", "", "The request body must be a JSON object."),
        ("", b"\xff{", "body", "", "The request body is not valid JSON."),
        ("", b"", "body", "", "The request body is not valid JSON."),
    ],
)
async def test_every_refusal_is_one_shape_naming_where_and_why(
    client, query: str, body: bytes, where: str, name: str, message: str
) -> None:
    response = await client.post(f"/things/1?{query}", data=body, headers=AUTH)
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["code"] == "validation_error"
    assert problem["detail"] == message
    assert problem["errors"][0] == {"in": where, "name": name, "message": message}
    if name:
        assert problem["field" if where == "body" else "parameter"] == name
    else:
        assert "field" not in problem and "parameter" not in problem


async def test_an_anonymous_request_is_told_401_before_anything_about_its_body(client) -> None:
    response = await client.post("/things/1", data=b"not json")
    assert response.status == 401


@pytest.mark.parametrize("thing_id", ["abc", "0", "99999999999999999999", "\u0661", "1{2}", "%7B"])
async def test_a_malformed_path_id_is_the_routes_404_before_the_query_and_body(
    client, thing_id: str
) -> None:
    response = await client.post(f"/things/{thing_id}?limit=0", data=b"{", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["code"] == "thing_not_found"
    anonymous = await client.post(f"/things/{thing_id}?limit=0", data=b"{")
    assert anonymous.status == 401


def test_the_document_shows_the_models_that_validate() -> None:
    doc = document("Things", "Test", [api])
    operation = doc["paths"]["/things/{thing_id}"]["post"]
    assert operation["security"] == [{"bearer": []}]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["thing_id"]["in"] == "path"
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert params["limit"]["description"] == "Page size."
    assert params["status"]["schema"] == {"type": "string", "enum": ["available", "booked"]}
    assert params["city"]["schema"]["maxLength"] == 100
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    ask = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert ask["additionalProperties"] is False
    assert ask["required"] == ["event_id"]
    assert set(operation["responses"]) == {"201", "400", "401"}
    refused = operation["responses"]["401"]["content"]["application/problem+json"]["schema"]
    assert {
        "properties": {"code": {"enum": ["unauthorized", "invalid_token", "token_expired"]}}
    } in refused["allOf"]
    assert {"Ask", "Held", "Problem", "ValidationProblem", "FieldError"} <= set(
        doc["components"]["schemas"]
    )


def test_merge_keeps_identical_routes_once_and_refuses_a_conflict() -> None:
    one = document("A", "a", [api])
    same = document("B", "b", [api])
    merged = merge("All", "both", [one, same])
    assert merged["paths"] == one["paths"]
    other = Api()

    @other.post("/things/{thing_id}", summary="Something else", replies=[Ok(200, "ok")])
    async def clash(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="described twice"):
        merge("All", "both", [one, document("C", "c", [other])])

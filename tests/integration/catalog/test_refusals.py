"""catalog_api refuses bad input in one shape, naming what it refuses, and in the order the
contract promises: who may ask (401, 403), then which event (404), then the input (400)."""

from __future__ import annotations

import pytest

from tests.integration.catalog.support import Seed, admin_headers, assert_problem, get_json
from tests.support import auth_header

VENUE = {
    "name": "Refusal Hall",
    "city": "Leipzig",
    "location": {"lat": 51.34, "lon": 12.37},
    "seat_map": {"sections": [{"name": "Floor", "rows": 1, "seats_per_row": 2, "price_cents": 0}]},
}


def _names(problem: dict) -> list[str]:
    return [error["name"] for error in problem["errors"]]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/events", "city"),
        ("/events/{event_id}/tickets", "section"),
        ("/search", "term"),
        ("/search", "location"),
    ],
)
async def test_query_text_with_a_nul_is_400_naming_the_parameter(
    client, seed: Seed, path: str, parameter: str
) -> None:
    event_id = seed.events["adele_munich"]["id"]
    status, body = await get_json(
        client, path.format(event_id=event_id), params={parameter: "Ber\x00lin"}
    )
    assert_problem(status, body, 400, "validation_error")
    assert body["parameter"] == parameter
    assert body["errors"] == [
        {
            "in": "query",
            "name": parameter,
            "message": f"{parameter} must not contain NUL characters.",
        }
    ]


async def test_query_text_of_only_spaces_counts_as_absent(client, seed: Seed) -> None:
    status, everything = await get_json(client, "/events", params={"limit": "100"})
    assert status == 200
    status, blank = await get_json(client, "/events", params={"limit": "100", "city": "   "})
    assert status == 200
    assert blank == everything
    status, padded = await get_json(client, "/events", params={"city": "  Hamburg "})
    assert status == 200
    assert {item["venue"]["city"] for item in padded["items"]} == {"Hamburg"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/venues", {**VENUE, "name": "Hall\x00"}, "name"),
        ("/admin/performers", {"name": "Band", "genre": "rock\x00"}, "genre"),
    ],
)
async def test_body_text_with_a_nul_is_400_naming_the_field(
    client, catalog_settings, path: str, body: dict, field: str
) -> None:
    resp = await client.post(path, json=body, headers=admin_headers(catalog_settings))
    problem = await resp.json(content_type=None)
    assert_problem(resp.status, problem, 400, "validation_error")
    assert problem["field"] == field
    assert problem["errors"] == [
        {"in": "body", "name": field, "message": f"{field} must not contain NUL characters."}
    ]


async def test_an_unknown_body_field_is_named(client, catalog_settings) -> None:
    resp = await client.post(
        "/admin/venues",
        json={**VENUE, "capacity": 2, "location": {"lat": 1, "lon": 2, "alt": 3}},
        headers=admin_headers(catalog_settings),
    )
    problem = await resp.json(content_type=None)
    assert_problem(resp.status, problem, 400, "validation_error")
    assert set(_names(problem)) == {"capacity", "location.alt"}
    assert "capacity is not a known field." in [e["message"] for e in problem["errors"]]


async def test_an_empty_edit_and_a_null_are_refused(client, catalog_settings, seed: Seed) -> None:
    path = f"/admin/events/{seed.events['hosen_hamburg']['id']}"
    headers = admin_headers(catalog_settings)
    resp = await client.patch(path, json={}, headers=headers)
    problem = await resp.json(content_type=None)
    assert_problem(resp.status, problem, 400, "validation_error")
    assert problem["detail"] == "Send at least one field to change."
    resp = await client.patch(path, json={"on_sale_at": None}, headers=headers)
    problem = await resp.json(content_type=None)
    assert_problem(resp.status, problem, 400, "validation_error")
    assert problem["field"] == "on_sale_at"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/admin/venues"),
        ("post", "/admin/performers"),
        ("post", "/admin/events"),
        ("patch", "/admin/events/1"),
    ],
)
async def test_who_may_ask_is_answered_before_anything_about_the_body(
    client, catalog_settings, method: str, path: str
) -> None:
    send = getattr(client, method)
    for bad in ({"data": b"{not json"}, {"json": {"surprise": 1}}):
        resp = await send(path, **bad)
        assert_problem(resp.status, await resp.json(content_type=None), 401, "unauthorized")
        fan = auth_header(catalog_settings, "bob", ["fan"])
        resp = await send(path, headers=fan, **bad)
        assert_problem(resp.status, await resp.json(content_type=None), 403, "forbidden")
    resp = await send(path, data=b"{not json", headers=admin_headers(catalog_settings))
    assert_problem(resp.status, await resp.json(content_type=None), 400, "validation_error")


async def test_a_malformed_event_id_is_404_whatever_the_edit(client, catalog_settings) -> None:
    headers = admin_headers(catalog_settings)
    for body in ({"name": "x"}, {"surprise": 1}, {}):
        resp = await client.patch("/admin/events/abc", json=body, headers=headers)
        assert_problem(resp.status, await resp.json(content_type=None), 404, "event_not_found")


async def test_a_malformed_event_id_is_404_whatever_the_query(client) -> None:
    for path in ("/events/abc/tickets?limit=0", "/events/0/tickets?status=nope"):
        resp = await client.get(path)
        assert_problem(resp.status, await resp.json(content_type=None), 404, "event_not_found")
    # The control: a well-formed id with the same query is refused for the query.
    resp = await client.get("/events/1/tickets?limit=0")
    assert_problem(resp.status, await resp.json(content_type=None), 400, "validation_error")

"""The whole stack as `make run` starts it (deploy/Procfile under honcho), through nginx.

Everything is real: the processes are the Procfile's own commands, with this run's private
database, Redis prefix, vhost, ports and Typesense data directory, and demo data loaded by
the same loader `make run` uses (tests/e2e/stack.py; the ``stack`` fixture is shared).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import psycopg
import pytest

from deploy import openapi
from tests.e2e.stack import Stack, dev_token
from tests.servers import RUN_ID
from tests.support import wait_until

FRESHNESS_SECONDS = 5.0


def test_search_through_the_gateway_has_real_hits(stack: Stack):
    with psycopg.connect(stack.env["TICKETING_DATABASE_URL"]) as conn:
        name, city = conn.execute(
            "SELECT p.name, v.city FROM events e JOIN performers p ON p.id = e.performer_id "
            "JOIN venues v ON v.id = e.venue_id ORDER BY e.id LIMIT 1"
        ).fetchone()
    status, headers, body = stack.request("GET", "/search?term=" + urllib.request.quote(name))
    assert status == 200, body
    assert "X-Search-Degraded" not in headers, stack.logs()
    assert body["found"] >= 1
    assert any(hit["performer"]["name"] == name for hit in body["hits"])
    # A typo in the city still finds it (drop one inner letter).
    typo = city[:2] + city[3:] if len(city) > 4 else city
    status, _, body = stack.request("GET", "/search?location=" + urllib.request.quote(typo))
    assert status == 200 and body["found"] >= 1
    assert {hit["venue"]["city"] for hit in body["hits"]} == {city}


@pytest.mark.contract_exempt("asks the gateway for a path no route has", requests=["GET /nowhere"])
def test_views_lists_and_errors_through_the_gateway(stack: Stack):
    status, _, listing = stack.request("GET", "/events?limit=2")
    assert status == 200 and len(listing["items"]) == 2 and listing["next_cursor"]
    event_id = listing["items"][0]["id"]
    for path in (f"/events/{event_id}", f"/event/{event_id}"):
        status, _, view = stack.request("GET", path)
        assert status == 200 and view["id"] == event_id
        assert view["availability"]["total"] == view["availability"]["available"] > 0
    status, headers, body = stack.request("GET", "/events/not-a-number")
    assert status == 404 and body["code"] == "event_not_found"
    assert headers["Content-Type"].startswith("application/problem+json")
    status, headers, body = stack.request("GET", "/nowhere")
    assert status == 404 and body["code"] == "not_found"
    status, _, body = stack.request("POST", "/admin/events", data=b"x" * 200_000)
    assert status == 413 and body["code"] == "payload_too_large"
    # The gateway serves the merged document itself (deploy/openapi.json), not a service's.
    status, _, body = stack.request("GET", "/openapi.json")
    assert status == 200 and body == json.loads(openapi.FILE.read_text())
    assert {"/search", "/queue/{event_id}/join", "/booking/reserve"} <= set(body["paths"])


def test_catalog_changes_show_in_search_within_five_seconds(stack: Stack):
    admin = dev_token(stack, "ops", ["admin"])
    _, _, listing = stack.request("GET", "/events?limit=1")
    event = listing["items"][0]
    new_name = f"Zyzzogeton Farewell {RUN_ID}"
    started = time.monotonic()
    status, _, body = stack.request(
        "PATCH", f"/admin/events/{event['id']}", {"name": new_name}, token=admin
    )
    assert status == 200 and body["name"] == new_name

    def renamed_in_search() -> bool:
        _, _, found = stack.request("GET", "/search?term=zyzzogeton")
        return any(hit["id"] == event["id"] for hit in found["hits"])

    wait_until(renamed_in_search, FRESHNESS_SECONDS, "the rename to show in /search")
    print(f"rename visible in /search after {time.monotonic() - started:.2f}s")
    # The view was invalidated too.
    _, _, view = stack.request("GET", f"/events/{event['id']}")
    assert view["name"] == new_name

    # A brand-new event, created through the admin API, is searchable as fast.
    venue = {
        "name": "Kulturhaus",
        "city": "Leipzig",
        "location": {"lat": 51.34, "lon": 12.37},
        "seat_map": {
            "sections": [{"name": "Floor", "rows": 2, "seats_per_row": 5, "price_cents": 4500}]
        },
    }
    status, _, venue_body = stack.request("POST", "/admin/venues", venue, token=admin)
    assert status == 201, venue_body
    status, _, performer = stack.request(
        "POST", "/admin/performers", {"name": f"Quokka Parade {RUN_ID}"}, token=admin
    )
    assert status == 201, performer
    started = time.monotonic()
    status, _, created = stack.request(
        "POST",
        "/admin/events",
        {
            "name": "Night of Quokkas",
            "description": "Loud.",
            "date": "2027-03-01T20:00:00Z",
            "venue_id": venue_body["id"],
            "performer_id": performer["id"],
            "queue_enabled": False,
            "currency": "EUR",
        },
        token=admin,
    )
    assert status == 201, created
    assert created["availability"]["total"] == 10

    def created_in_search() -> bool:
        _, _, found = stack.request("GET", "/search?term=quokka&location=leipzig")
        return [hit["id"] for hit in found["hits"]] == [created["id"]]

    wait_until(created_in_search, FRESHNESS_SECONDS, "the new event to show in /search")
    print(f"new event visible in /search after {time.monotonic() - started:.2f}s")


def test_every_service_exposes_metrics(stack: Stack):
    # Every waitingroom process has its own port, and its own metrics there.
    waitingrooms = {f"waitingroom_{i + 1}": p for i, p in enumerate(stack.waitingroom_ports)}
    waitingrooms |= {f"frontdoor_{i + 1}": p for i, p in enumerate(stack.frontdoor_ports)}
    ports = {
        "catalog_api": stack.env["TICKETING_CATALOG_PORT"],
        **waitingrooms,
        "search_sync": stack.env["TICKETING_SEARCH_SYNC_METRICS_PORT"],
        "booking_worker": stack.env["TICKETING_BOOKING_WORKER_METRICS_PORT"],
        "booking_worker_2": str(int(stack.env["TICKETING_BOOKING_WORKER_METRICS_PORT"]) + 1),
        "booking_payments": str(int(stack.env["TICKETING_BOOKING_WORKER_METRICS_PORT"]) + 3),
    }
    stack.request("GET", "/search?term=rock")
    for port in waitingrooms.values():  # each has answered something
        stack.request("GET", "/healthz", base=f"http://127.0.0.1:{port}")
    texts = {}
    for service, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            texts[service] = resp.read().decode()
    assert "ticketing_http_requests_total{" in texts["catalog_api"]
    assert 'route="/search"' in texts["catalog_api"]
    assert len(waitingrooms) >= 2
    for process in waitingrooms:
        assert "ticketing_http_request_duration_seconds_bucket" in texts[process], process
    assert "ticketing_search_sync_lag_seconds" in texts["search_sync"]
    for worker in ("booking_worker", "booking_worker_2", "booking_payments"):
        assert "booking_command_latency_seconds" in texts[worker], worker
    # make run gives payments a worker of their own; the partition workers run commands only.
    for worker in ("booking_worker", "booking_worker_2"):
        assert 'booking_worker_stage{stage="commands"} 1.0' in texts[worker], worker
        assert 'stage="payments"' not in texts[worker], worker
    assert 'booking_worker_stage{stage="payments"} 1.0' in texts["booking_payments"]
    assert 'stage="commands"' not in texts["booking_payments"]
    # The gateway does not publish them.
    status, _, _ = stack.request("GET", "/metrics")
    assert status == 404


def _search_hit(stack: Stack, event: dict) -> dict | None:
    """The event's hit in the search index (None while it is not there)."""
    term = urllib.request.quote(event["performer"]["name"])
    status, headers, found = stack.request("GET", f"/search?term={term}&per_page=100")
    if status != 200 or "X-Search-Degraded" in headers:
        return None
    return next((hit for hit in found["hits"] if hit["id"] == event["id"]), None)


def test_booking_flow_through_the_gateway(stack: Stack):
    fan = dev_token(stack, f"fan-{RUN_ID}", [])
    _, _, listing = stack.request("GET", "/events?limit=50")
    # Not the first event: another test renames it.
    # On sale already: before its on_sale_at an event sells nothing (409 not_on_sale).
    now = datetime.now(UTC)
    event = next(
        e
        for e in listing["items"][1:]
        if not e["queue_enabled"]
        and e["available_tickets"] >= 2
        and datetime.fromisoformat(stack.request("GET", f"/events/{e['id']}")[2]["on_sale_at"])
        <= now
        and _search_hit(stack, e)
    )
    _, _, view = stack.request("GET", f"/events/{event['id']}")
    before = view["availability"]
    indexed_before = _search_hit(stack, event)["available_tickets"]

    # Reserve 2 seats, best available; the same Idempotency-Key answers the same hold.
    reserve = {"event_id": event["id"], "quantity": 2}
    key = {"Idempotency-Key": f"stack-reserve-{RUN_ID}"}
    status, _, hold = stack.request("POST", "/booking/reserve", reserve, token=fan, headers=key)
    assert status == 201, (hold, stack.logs())
    held_at = time.monotonic()
    assert hold["status"] == "held" and hold["event_id"] == event["id"]
    assert len(hold["tickets"]) == 2
    assert hold["amount_cents"] == sum(t["price_cents"] for t in hold["tickets"])
    status, _, again = stack.request("POST", "/booking/reserve", reserve, token=fan, headers=key)
    assert status == 201 and again["hold_id"] == hold["hold_id"]

    # The seats are gone from the view and from search within the freshness bound.
    def view_available() -> int:
        return stack.request("GET", f"/events/{event['id']}")[2]["availability"]["available"]

    def indexed_available() -> int | None:
        hit = _search_hit(stack, event)
        return None if hit is None else hit["available_tickets"]

    wait_until(
        lambda: view_available() == before["available"] - 2,
        FRESHNESS_SECONDS,
        "the hold to show in /events/{id}",
    )
    wait_until(
        lambda: indexed_available() == indexed_before - 2,
        max(0.1, FRESHNESS_SECONDS - (time.monotonic() - held_at)),
        "the hold to show in /search",
    )
    print(f"hold visible in /events and /search after {time.monotonic() - held_at:.2f}s")

    # Pay through localstripe.
    confirm = {"hold_id": hold["hold_id"], "payment_method": "pm_card_visa"}
    status, _, booking = stack.request("POST", "/booking/confirm", confirm, token=fan)
    assert status == 201, (booking, stack.logs())
    assert booking["status"] == "confirmed" and booking["hold_id"] == hold["hold_id"]
    assert booking["payment_intent_id"]
    assert [t["id"] for t in booking["tickets"]] == [t["id"] for t in hold["tickets"]]
    assert booking["amount_cents"] == hold["amount_cents"]
    status, _, same = stack.request("POST", "/booking/confirm", confirm, token=fan)
    assert status == 201 and same["booking_id"] == booking["booking_id"]

    status, _, mine = stack.request("GET", "/me/bookings", token=fan)
    assert status == 200 and [b["booking_id"] for b in mine["items"]] == [booking["booking_id"]]
    status, _, fetched = stack.request("GET", f"/bookings/{booking['booking_id']}", token=fan)
    assert status == 200 and fetched["tickets"] == booking["tickets"]
    ticket_id = hold["tickets"][0]["id"]
    status, _, ticket = stack.request("GET", f"/booking/{ticket_id}", token=fan)
    assert status == 200 and ticket == {
        "ticket_id": ticket_id,
        "status": "booked",
        "booking_id": booking["booking_id"],
    }

    def booked_in_view() -> bool:
        availability = stack.request("GET", f"/events/{event['id']}")[2]["availability"]
        return (availability["available"], availability["booked"]) == (
            before["available"] - 2,
            before["booked"] + 2,
        )

    wait_until(booked_in_view, FRESHNESS_SECONDS, "the booking to show in /events/{id}")
    assert indexed_available() == indexed_before - 2

    # Someone else cannot see the booking; the webhook refuses an unsigned delivery.
    other = dev_token(stack, f"other-{RUN_ID}", [])
    status, _, body = stack.request("GET", f"/bookings/{booking['booking_id']}", token=other)
    assert status == 404 and body["code"] == "booking_not_found"
    status, _, body = stack.request("POST", "/webhooks/stripe", {"id": "evt_forged"})
    assert status == 400 and body["code"] == "invalid_signature"


def test_the_banners_booking_example_books(stack: Stack):
    """The banner `make run` prints names an event for its reserve example: one without a
    waiting room, with seats, and on sale (else the example answers 409 not_on_sale)."""
    wait_until(lambda: "ticketing is up" in stack.log.read_text(errors="replace"), 60, "banner")
    found = re.search(r"""'\{"event_id": (\d+), "quantity": 2\}'""", stack.log.read_text())
    assert found, stack.logs()
    fan = dev_token(stack, f"banner-{RUN_ID}", [])
    body = {"event_id": int(found[1]), "quantity": 2}
    status, _, hold = stack.request("POST", "/booking/reserve", body, token=fan)
    assert status == 201, hold

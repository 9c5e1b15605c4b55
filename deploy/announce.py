"""The ``ready`` process of deploy/Procfile: say clearly when the stack is up, and where.

    python -m deploy.announce [--timeout 180]

Waits for catalog_api and waitingroom to listen, then polls the gateway's /healthz until it
answers 200 and /search answers from the index (printing progress), prints the base URL
and example requests and blocks until terminated. Checking the ports first keeps nginx
from logging a 502 for every early poll. If the deadline passes it exits 1, which makes
honcho stop the whole stack rather than leave a half-started one running.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from deploy.probe import poll, port_in_use
from ticketing.config import Settings


def fetch(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answered at all."""
    try:
        # The stack's own http:// addresses, built from the settings.
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def loopback(settings: Settings) -> str:
    wildcard = ("0.0.0.0", "::", "")  # noqa: S104 - recognised here, nothing binds to it
    return "127.0.0.1" if settings.host in wildcard else settings.host


def base_url(settings: Settings) -> str:
    return f"http://{loopback(settings)}:{settings.gateway_port}"


def search_ready(base: str) -> bool:
    """True once /search answers from the index, not from the degraded Postgres fallback
    (search_sync builds the index from the database on first start)."""
    try:
        with urllib.request.urlopen(f"{base}/search?per_page=1", timeout=2) as resp:  # noqa: S310
            return resp.status == 200 and "X-Search-Degraded" not in resp.headers
    except (OSError, ValueError):
        return False


def sample_events(base: str) -> list[dict[str, Any]]:
    status, body = fetch(f"{base}/events?limit=20")
    try:
        return list(json.loads(body)["items"]) if status == 200 else []
    except (ValueError, KeyError, TypeError):
        return []


def bookable(base: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """An event without a waiting room, on sale (before its on_sale_at a reserve is 409
    not_on_sale) and with seats left, so the booking example works. A list item does not
    carry on_sale_at: the event's view does."""
    now = datetime.now(UTC)
    for event in events:
        if event.get("queue_enabled") or event.get("available_tickets", 0) < 2:
            continue
        status, body = fetch(f"{base}/events/{event.get('id')}")
        try:
            opens = datetime.fromisoformat(json.loads(body)["on_sale_at"])
        except (ValueError, KeyError, TypeError):
            continue
        if status == 200 and opens <= now:
            return event
    return {}


def queued(base: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """An event with a waiting room, for the queue page's link: one of ``events``, else the
    demo's first event when it has one (the demo puts its waiting rooms first)."""
    found = next((e for e in events if e.get("queue_enabled")), None)
    if found is None:
        status, body = fetch(f"{base}/events/1")
        try:
            found = json.loads(body) if status == 200 else {}
        except ValueError:
            found = {}
    return found if found.get("queue_enabled") else {}


def banner(
    base: str,
    event: dict[str, Any],
    booking_event: dict[str, Any] | None = None,
    queue_event: dict[str, Any] | None = None,
) -> str:
    event_id = event.get("id", "<event_id>")
    term = (event.get("performer") or {}).get("name", "rock").split()[0]
    city = (event.get("venue") or {}).get("city", "")
    search = f"{base}/search?term={quote(term)}" + (f"&location={quote(city)}" if city else "")
    token_body = '{"user_id": "alice", "roles": ["admin"]}'  # noqa: S105 - a printed example body
    booking_id = (booking_event or {}).get("id", "<event_id>")
    queue_id = (queue_event or {}).get("id", "<event_id>")
    lines = [
        f"ticketing is up: {base}",
        "",
        f"  curl '{base}/events?limit=3'",
        f"  curl '{search}'",
        f"  curl '{base}/events/{event_id}'",
        f"  curl -X POST {base}/auth/dev-token -H 'Content-Type: application/json' \\",
        f"       -d '{token_body}'",
        "",
        "  book 2 seats (TOKEN=<access_token> from a dev token; localstripe takes the",
        "  payment: pm_card_visa pays, pm_card_chargeCustomerFail is declined):",
        f'  curl -X POST {base}/booking/reserve -H "Authorization: Bearer $TOKEN" \\',
        "       -H 'Content-Type: application/json' "
        f'-d \'{{"event_id": {booking_id}, "quantity": 2}}\'',
        f'  curl -X POST {base}/booking/confirm -H "Authorization: Bearer $TOKEN" \\',
        "       -H 'Content-Type: application/json' \\",
        '       -d \'{"hold_id": "<hold_id>", "payment_method": "pm_card_visa"}\'',
        f'  curl {base}/me/bookings -H "Authorization: Bearer $TOKEN"',
        "",
        f"  queue page:         {base}/queue/{queue_id}   (?user=NAME to be another fan)",
        f"  operators' console: {base}/admin",
        f"  API (OpenAPI 3.1):  {base}/openapi.json",
        f"  health:             {base}/healthz",
        "",
        "Ctrl-C stops everything.",
    ]
    rule = "=" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.announce")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = Settings.from_env()
    base = base_url(settings)
    health = f"{base}/healthz"
    backends = {"catalog_api": settings.catalog_port}
    backends |= {f"waitingroom:{port}": port for port in settings.waitingroom_ports}
    backends |= {f"frontdoor:{port}": port for port in settings.frontdoor_ports}
    print(
        f"waiting for {', '.join(backends)} and then {health} (up to {args.timeout:.0f}s)",
        flush=True,
    )

    seen, reported = "nothing yet", 0.0
    for elapsed in poll(args.timeout, 0.5):
        listening = {n: port_in_use(loopback(settings), p) for n, p in backends.items()}
        if all(listening.values()):
            status, body = fetch(health)
            if status == 200 and search_ready(base):
                break
            if status == 200:
                seen = "healthy; search_sync is still building the search index"
            else:
                seen = f"HTTP {status}: {body[:160]}" if status else f"no answer ({body})"
        else:
            seen = "not listening yet: " + ", ".join(n for n, up in listening.items() if not up)
        if elapsed - reported >= 5:
            reported = elapsed
            print(f"still waiting after {elapsed:.0f}s; {seen}", flush=True)
    else:
        print(
            f"gave up: {health} not healthy after {args.timeout:.0f}s; last: {seen}",
            file=sys.stderr,
            flush=True,
        )
        return 1

    events = sample_events(base)
    print(
        banner(base, events[0] if events else {}, bookable(base, events), queued(base, events)),
        flush=True,
    )
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())

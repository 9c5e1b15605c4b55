"""The gateway's OpenAPI document: catalog_api's and the waitingroom's merged into one,
written to deploy/openapi.json, which nginx serves at ``/openapi.json`` (so the document
stays up whatever service is down).

    python -m deploy.openapi            # write deploy/openapi.json
    python -m deploy.openapi --check    # exit 1 when the file is not what the code says

tests/unit/platform/test_openapi_document.py runs the check in make check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from catalog_api.openapi import build_document as catalog_document
from ticketing.api import Problems, merge
from ticketing.api.replies import PROBLEM_JSON
from waitingroom.openapi import build_document as waitingroom_document

FILE = Path(__file__).with_name("openapi.json")
TITLE = "Ticketing platform"
DESCRIPTION = (
    "Every public route behind the gateway: browse and search events, join an event's "
    "waiting room, hold seats and pay for them, look up bookings, and the operators' "
    "catalog and queue controls. Errors are RFC 9457 problem documents with a stable code; "
    "a 400 validation_error names each field or parameter it refuses and why."
)


# What nginx answers itself, before any service sees the request (deploy/nginx.conf.template,
# the /_gateway/NNN locations): any route may get these, whatever its service declares.
GATEWAY_REPLIES = (
    Problems(400, "the gateway could not parse the request", codes=("bad_request",)),
    Problems(413, "the request body is too large", codes=("payload_too_large",)),
    Problems(414, "the request URI is too long", codes=("uri_too_long",)),
    Problems(429, "too many connections from this address", codes=("rate_limited",)),
    Problems(431, "the request headers are too large", codes=("header_too_large",)),
    Problems(502, "the service behind this route is not answering", codes=("backend_unavailable",)),
    Problems(503, "the service behind this route is unavailable", codes=("backend_unavailable",)),
    Problems(504, "the service did not answer in time", codes=("backend_unavailable",)),
)


def merged_document() -> dict[str, Any]:
    doc = merge(TITLE, DESCRIPTION, [catalog_document(), waitingroom_document()])
    for item in doc["paths"].values():
        for operation in item.values():
            with_gateway_replies(operation["responses"])
    return doc


def with_gateway_replies(responses: dict[str, Any]) -> None:
    """Add what the gateway may answer to one operation's ``responses``: a new status as
    the gateway's problem, or the gateway's code added to a problem the route declares."""
    for reply in GATEWAY_REPLIES:
        status = str(reply.status)
        known = responses.get(status)
        if known is None:
            responses[status] = reply.render()
            continue
        schema = known.get("content", {}).get(PROBLEM_JSON, {}).get("schema", {})
        for part in schema.get("allOf", ()):
            codes = part.get("properties", {}).get("code", {}).get("enum")
            if codes is not None and reply.codes[0] not in codes:
                codes.append(reply.codes[0])
                known["description"] += f"; {reply.codes[0]}: {reply.description} (the gateway)"
    # Keep the statuses in order, as the services' documents list them.
    ordered = dict(sorted(responses.items()))
    responses.clear()
    responses.update(ordered)


def rendered() -> str:
    return json.dumps(merged_document(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    text = rendered()
    if args.check:
        if not FILE.exists() or FILE.read_text() != text:
            print(f"{FILE} is stale: run python -m deploy.openapi", file=sys.stderr)
            return 1
        return 0
    FILE.write_text(text)
    print(f"wrote {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

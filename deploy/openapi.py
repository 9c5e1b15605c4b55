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
from ticketing.api import merge
from waitingroom.openapi import build_document as waitingroom_document

FILE = Path(__file__).with_name("openapi.json")
TITLE = "Ticketing platform"
DESCRIPTION = (
    "Every public route behind the gateway: browse and search events, join an event's "
    "waiting room, hold seats and pay for them, look up bookings, and the operators' "
    "catalog and queue controls. Errors are RFC 9457 problem documents with a stable code; "
    "a 400 validation_error names each field or parameter it refuses and why."
)


def merged_document() -> dict[str, Any]:
    return merge(TITLE, DESCRIPTION, [catalog_document(), waitingroom_document()])


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

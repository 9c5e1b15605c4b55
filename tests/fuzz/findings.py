"""What the fuzz tests found the platform still getting wrong, one entry per cause, as
written up in /work/notes/fuzz_findings.md (request, answer, which component answered, the
fix). A case that meets one is marked with :func:`known`: strict, so the fix shows."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

FINDINGS = {
    "F1": "nginx answers a %00 in a path id with its own 400 bad_request (documented for "
    "every operation since fc1a4b3), where a malformed id promises the route's 404",
    "F6": "a raw non-ASCII byte in the request target (path or query): the service's HTTP "
    "parser answers 400 text/plain ('Invalid char in url ...'), relayed by nginx",
    "F7": "HTTP/1.0 without Host: nginx forwards an empty Host and the service answers "
    "400 text/plain ('Missing Host header')",
}


def known(finding: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason=f"{finding} (/work/notes/fuzz_findings.md): {FINDINGS[finding]}",
    )


def finding_of(path: str, status: int, body: bytes) -> str | None:
    """The known finding a fuzzed request's faulty answer is an instance of, if any: the
    fuzz test counts those apart (their own cases are the strict xfails) and fails on the
    rest."""
    where = urlsplit(path).path.upper()
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        code = None
    if status == 400 and code == "bad_request" and "%00" in where:
        return "F1"
    return None

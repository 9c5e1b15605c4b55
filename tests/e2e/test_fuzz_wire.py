"""Nasty requests no HTTP client library would send, through the gateway as raw bytes:
raw non-ASCII and invalid UTF-8 in the request line, HTTP/1.0 without Host, oversized and
garbage headers, and websocket handshakes with garbage tokens and tickets. Each must be
answered as documented (tests/fuzz/judge.py): a raw non-ASCII byte in the target and a
missing Host are answered by the gateway as problem+json, not by a service's parser.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.stack import Stack, dev_token, queue_event
from tests.fuzz import wire
from tests.fuzz.judge import answered_well
from tests.servers import RUN_ID

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
# A JWT with alg "none" and no signature: must never pass for a fan's.
UNSIGNED_JWT = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXX0."


@dataclass(frozen=True)
class Own:
    fan: str
    event: int


@pytest.fixture(scope="module")
def own(stack: Stack) -> Own:
    admin = dev_token(stack, f"wire-admin-{RUN_ID}", ["admin"])
    fan = dev_token(stack, f"wire-fan-{RUN_ID}", [])
    event = queue_event(stack, admin)["id"]
    status, _, body = stack.request("POST", f"/queue/{event}/join", token=fan)
    assert status == 200, body
    return Own(fan, event)


def _host(stack: Stack) -> bytes:
    return (urlsplit(stack.base).netloc).encode()


def _raw(
    stack: Stack, line: bytes, headers: bytes = b"", source: int = 7, body: bytes = b""
) -> wire.Answer:
    head = line + b"\r\nHost: " + _host(stack) + b"\r\n" + headers + b"Connection: close\r\n\r\n"
    return wire.raw(stack.base, head + body, source)


def _quoted(target: bytes) -> str:
    """The target as the checker should match it: percent-encoded where it was raw."""
    return quote(
        target.decode("utf-8", errors="surrogateescape"), safe="/?&=%,", errors="surrogateescape"
    )


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        pytest.param(b"/search?term=caf\xc3\xa9", False, id="raw UTF-8 in query"),
        pytest.param(b"/search?term=\xff\xfe", True, id="raw invalid UTF-8 in query"),
        pytest.param(b"/search?term=\xf0\x9f\x8e\xab", False, id="raw emoji in query"),
        pytest.param(b"/events/caf\xc3\xa9", True, id="raw UTF-8 in path"),
        pytest.param(b"/events/\xff", True, id="raw invalid UTF-8 in path"),
        pytest.param(b"/search?term=%00%00", True, id="encoded NULs in query"),
    ],
)
def test_raw_request_target(stack: Stack, target: bytes, refusal: bool) -> None:
    answer = _raw(stack, b"GET " + target + b" HTTP/1.1")
    answered_well("GET", _quoted(target), answer, refusal=refusal)


@pytest.mark.parametrize(
    "path",
    ["/search?term=x", "/events"],
)
def test_http_1_0_without_host(stack: Stack, path: str) -> None:
    answer = wire.raw(stack.base, f"GET {path} HTTP/1.0\r\n\r\n".encode())
    answered_well("GET", path, answer, refusal=False)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(b"Bearer garbage", id="garbage"),
        pytest.param(b"Bearer " + UNSIGNED_JWT.encode(), id="alg none"),
        pytest.param(b"Bearer a.b.c", id="three dots"),
        pytest.param(b"Basic Zm9vOmJhcg==", id="basic"),
        pytest.param(b"Bearer \xff\xfe\xc3\x28", id="invalid UTF-8"),
        pytest.param(b"Bearer " + b"x" * 6000, id="6 KB"),
        pytest.param(b"Bearer " + b"x" * 9000, id="9 KB"),
    ],
)
def test_garbage_credentials_are_refused_401(stack: Stack, authorization: bytes) -> None:
    answer = _raw(stack, b"GET /me/bookings HTTP/1.1", b"Authorization: " + authorization + b"\r\n")
    assert answer.status in (401, 431), answer
    answered_well("GET", "/me/bookings", answer)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/events"),
        pytest.param(b"/search?term=x"),
        pytest.param(b"/admin/queues"),
        pytest.param(b"/queue/{event}/status"),
        pytest.param(b"/queue/{event}/ws"),
    ],
)
def test_invalid_utf8_bearer_anywhere(stack: Stack, own: Own, target: bytes) -> None:
    """Every route reads the bearer token (the rate limiter counts by user), public ones
    too: an undecodable one is refused (401) or ignored, never a 500."""
    target = target.replace(b"{event}", str(own.event).encode())
    answer = _raw(stack, b"GET " + target + b" HTTP/1.1", b"Authorization: Bearer \xff\xfe\r\n")
    answered_well("GET", target.decode(), answer, refusal=False)


def _handshake(stack: Stack, path: str, headers: dict[str, str] | None = None) -> wire.Answer:
    url = urlsplit(stack.base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=wire.TIMEOUT)
    try:
        connection.request(
            "GET",
            path,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": WS_KEY,
                "Sec-WebSocket-Version": "13",
                "Origin": stack.base,
                **(headers or {}),
            },
        )
        response = connection.getresponse()
        body = b"" if response.status == 101 else response.read()
        return wire.Answer(response.status, dict(response.getheaders()), body)
    finally:
        connection.close()


GARBAGE_TOKENS = {
    "garbage": "garbage",
    "empty": "",
    "alg none": UNSIGNED_JWT,
    "three dots": "a.b.c",
    "NUL": "%00",
    "emoji": "%F0%9F%8E%AB",
    "4 KB": "x" * 4000,
}


@pytest.mark.parametrize("name", list(GARBAGE_TOKENS))
@pytest.mark.parametrize("parameter", ["token", "ticket"])
def test_websocket_with_garbage_token_is_refused(
    stack: Stack, own: Own, parameter: str, name: str
) -> None:
    path = f"/queue/{own.event}/ws?{parameter}={GARBAGE_TOKENS[name]}"
    answer = _handshake(stack, path)
    assert answer.status in (401, 403), answer
    answered_well("GET", path, answer)


@pytest.mark.parametrize("name", list(GARBAGE_TOKENS))
def test_websocket_with_garbage_bearer_is_refused(stack: Stack, own: Own, name: str) -> None:
    path = f"/queue/{own.event}/ws"
    answer = _handshake(stack, path, {"Authorization": f"Bearer {GARBAGE_TOKENS[name]}"})
    assert answer.status in (401, 403), answer
    answered_well("GET", path, answer)


def test_websocket_of_a_fan_in_the_queue_opens(stack: Stack, own: Own) -> None:
    """The handshake above is one the gateway can accept: with the fan's real token it
    upgrades, so the refusals are about the tokens."""
    path = f"/queue/{own.event}/ws"
    answer = _handshake(stack, path, {"Authorization": f"Bearer {own.fan}"})
    assert answer.status == 101, answer
    answered_well("GET", path, answer, refusal=False)


def test_chunked_body_over_the_limit_is_refused_413(stack: Stack, own: Own) -> None:
    """No Content-Length to refuse it by: nginx must count the chunks."""
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(160)) + b"0\r\n\r\n"
    answer = _raw(
        stack,
        b"POST /auth/dev-token HTTP/1.1",
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        body=chunks,
    )
    assert answer.status == 413, answer
    answered_well("POST", "/auth/dev-token", answer)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
def test_body_of_another_content_type_is_refused(stack: Stack, content_type: str) -> None:
    answer = _raw(
        stack,
        b"POST /auth/dev-token HTTP/1.1",
        f"Content-Type: {content_type}\r\nContent-Length: 9\r\n".encode(),
        body=b"user_id=x",
    )
    answered_well("POST", "/auth/dev-token", answer)

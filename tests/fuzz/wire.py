"""Requests as they go on the wire, unchecked, for the fuzz tests: through an HTTP client
from one of many loopback addresses (the gateway and the services count rate limits per
client address, and a fuzzer from one address would mostly hear 429), or as raw bytes
no client library would send.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT = 10.0
# 127.0.0.0/8 is all loopback on Linux: each address its own client to the gateway.
SOURCES = tuple(f"127.0.{n // 250}.{n % 250 + 2}" for n in range(500))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), None)


def send(
    base: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    source: int = 0,
) -> Answer:
    """One request from loopback address number ``source``; the path goes as given (the
    caller quotes it)."""
    url = urlsplit(base)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(
        url.hostname or "127.0.0.1",
        url.port,
        timeout=TIMEOUT,
        source_address=(SOURCES[source % len(SOURCES)], 0),
    )
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def raw(base: str, data: bytes, source: int = 0) -> Answer:
    """``data`` sent as the whole request, as is; the answer parsed leniently (an error
    page nginx writes for an unparsable request is what is being looked at)."""
    url = urlsplit(base)
    with socket.create_connection(
        (url.hostname or "127.0.0.1", url.port or 80),
        timeout=TIMEOUT,
        source_address=(SOURCES[source % len(SOURCES)], 0),
    ) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return parse(received)


def parse(received: bytes) -> Answer:
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split(" ")) < 2:
        return Answer(0, {}, received)
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out

"""Every reply the integration and end-to-end tests receive, held to the gateway's merged
OpenAPI document (deploy/openapi.py) as it arrives, its violations kept for the running test.

Two doors: the services' in-process applications, served by aiohttp's ``TestServer``, get
an outermost middleware before they start (:func:`install`); the end-to-end stack's request
function hands each reply to :func:`observe`. tests/conftest.py opens a record per test and
fails the test at teardown with what its replies got wrong.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import payload, web
from aiohttp.test_utils import TestServer

from tests.contract.checker import Contract, Violation, excerpt
from ticketing.metrics import SERVICE_KEY

# The applications the gateway's document describes; a test's own probe application (a
# base app with routes of its own) or a fake upstream is not held to it.
DOCUMENTED_SERVICES = frozenset({"catalog_api", "waitingroom"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def contract() -> Contract:
    """The merged document as the code builds it now (not deploy/openapi.json, which may
    lag until regenerated), once per run."""
    from deploy.openapi import merged_document

    return Contract(merged_document())


class Record:
    """The violations seen while one test runs. Replies can arrive on other threads (a
    test's background poller), so adding takes a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._found: list[Violation] = []

    def start(self) -> None:
        with self._lock:
            self._open, self._found = True, []

    def stop(self) -> list[Violation]:
        with self._lock:
            found, self._open, self._found = self._found, False, []
        return found

    @property
    def open(self) -> bool:
        return self._open

    def add(self, found: list[Violation]) -> None:
        with self._lock:
            if self._open:
                self._found.extend(found)


RECORD = Record()


def observe(
    method: str, path: str, status: int, content_type: str | None, body: bytes | None
) -> None:
    """Hold one reply to the document; what is wrong goes to the running test's record.
    A checker that cannot check is a violation too, never an error in the server."""
    if not RECORD.open:
        return
    try:
        found = contract().check(method, path, status, content_type, body)
    except Exception as exc:
        what = f"not checked: {type(exc).__name__}: {exc}"
        found = [Violation(method.upper(), path, status, what, excerpt(body))]
    RECORD.add(found)


def excused(violation: Violation, marker: pytest.Mark | None) -> bool:
    """Whether a test's ``contract_exempt`` marker covers the violation: every one, or
    those of the requests it names (``requests=["GET /nowhere", "DELETE /events/*"]``)."""
    if marker is None:
        return False
    patterns = marker.kwargs.get("requests")
    return patterns is None or any(fnmatch.fnmatchcase(violation.request, p) for p in patterns)


def report(violations: list[Violation]) -> str:
    lines = [f"{len(violations)} replies differ from the OpenAPI document:"]
    lines.extend(f"  - {violation}" for violation in violations)
    lines.append(
        "(tests/contract: fix the reply or its declaration; a test that means to send what "
        'the document cannot describe takes @pytest.mark.contract_exempt("why", '
        'requests=["METHOD /path"]))'
    )
    return "\n".join(lines)


@web.middleware
async def contract_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp answers it as the reply it is
        _observe_response(request, exc)
        raise
    except Exception as exc:
        # Past the services' own problem middleware: aiohttp answers a bare 500.
        observe(request.method, request.path_qs, 500, "text/plain", repr(exc).encode())
        raise
    _observe_response(request, response)
    return response


def _observe_response(request: web.Request, response: web.StreamResponse) -> None:
    if not isinstance(response, web.Response):
        # A stream: a websocket's handler returns once the socket has closed, and its
        # upgrade status (101, or a refusal sent before upgrading) is all there is to check.
        observe(request.method, request.path_qs, response.status, None, None)
        return
    body = _body_bytes(response.body)
    content_type = response.headers.get("Content-Type")
    if content_type is None and body:
        content_type = "application/octet-stream"  # what aiohttp sends for it
    observe(request.method, request.path_qs, response.status, content_type, body)


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, payload.BytesPayload) and isinstance(body._value, bytes):
        return body._value
    return None  # a streamed payload: not checked


def watch(app: web.Application) -> None:
    """Put the contract's middleware outermost in a service's application, before it is
    frozen (at its start)."""
    if app.get(SERVICE_KEY, "") not in DOCUMENTED_SERVICES or app.frozen:
        return
    if contract_middleware not in app.middlewares:
        app.middlewares.insert(0, contract_middleware)


_installed: list[Callable[..., Awaitable[None]]] = []


def install() -> None:
    """Watch the application of every ``TestServer`` as it starts: every in-process
    service a test talks to is started by one (``TestClient`` included)."""
    if _installed:
        return
    original = TestServer.start_server
    _installed.append(original)

    async def start_server(self: TestServer, *args: Any, **kwargs: Any) -> None:
        watch(self.app)
        await original(self, *args, **kwargs)

    TestServer.start_server = start_server  # type: ignore[method-assign, assignment]

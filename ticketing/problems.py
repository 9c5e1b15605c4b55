"""RFC 9457 problem documents, the only error shape any service returns.

Handlers raise :class:`Problem` (or let aiohttp raise its HTTP errors); the middleware turns
both, and anything unexpected, into ``application/problem+json`` without leaking internals.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://ticketing.example/problems/"
CONTENT_TYPE = "application/problem+json"

# Codes for errors that aiohttp raises itself (routing, body size).
_DEFAULT_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "backend_unavailable",
}


class Problem(Exception):
    """An error that the client should see, with a stable snake_case ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


def validation_error(detail: str, **extra: Any) -> Problem:
    return Problem(400, "validation_error", detail, **extra)


def problem_response(problem: Problem) -> web.Response:
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.to_dict()),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


def _from_http_exception(exc: web.HTTPException) -> Problem:
    status = exc.status
    detail = exc.reason or HTTPStatus(status).phrase
    if status == 404:
        detail = "No such resource."
    elif status == 405:
        detail = "This method is not allowed on this resource."
    elif status == 413:
        detail = "The request body is too large."
    headers = {}
    if status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    return Problem(status, _DEFAULT_CODES.get(status, "http_error"), detail, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http_exception(exc))
    except Exception:
        # The log has the traceback; the client gets nothing internal.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, "internal_error", "Something went wrong on our side; it was logged.")
        )


RETRY_AFTER_SECONDS = "2"


def backend_unavailable(detail: str) -> Problem:
    """A dependency is down: ``503 backend_unavailable``, retry shortly."""
    return Problem(503, "backend_unavailable", detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


@contextlib.contextmanager
def unavailable_on(errors: tuple[type[BaseException], ...], detail: str) -> Iterator[None]:
    """Any of ``errors`` raised inside becomes :func:`backend_unavailable` with ``detail``."""
    try:
        yield
    except errors as exc:
        raise backend_unavailable(detail) from exc

"""Replies many routes share: refusals of the middlewares (authentication, rate limits,
body size) and of a dependency being down."""

from __future__ import annotations

from ticketing.api.replies import Problems
from ticketing.api.shapes import ValidationProblem

RETRY_AFTER = (("Retry-After", "Seconds to wait before trying again."),)

BAD_REQUEST = Problems(
    400,
    "malformed JSON, wrong types, unknown fields or out-of-range values; `errors` names "
    "each field or parameter and why",
    codes=("validation_error",),
    extra=ValidationProblem,
)
UNAUTHORIZED = Problems(
    401, "a valid bearer token is needed", codes=("unauthorized", "invalid_token", "token_expired")
)
FORBIDDEN = Problems(403, "the route needs the admin role", codes=("forbidden",))
TOO_LARGE = Problems(413, "the request body is too large", codes=("payload_too_large",))
RATE_LIMITED = Problems(
    429, "too many requests; retry after Retry-After", codes=("rate_limited",), headers=RETRY_AFTER
)
UNAVAILABLE = Problems(
    503,
    "a dependency is down; retry after Retry-After",
    codes=("backend_unavailable",),
    headers=RETRY_AFTER,
)

"""Problems several booking routes answer, declared once for their documents."""

from __future__ import annotations

from ticketing.api import Problems
from ticketing.api.common import RETRY_AFTER
from ticketing.api.shapes import ValidationProblem

BOOKING_UNAVAILABLE = Problems(
    503,
    "RabbitMQ or every booking worker is down, or no worker answered within "
    "TICKETING_BOOKING_RPC_TIMEOUT_SECONDS. A command already accepted is durable and still "
    "applied; retry with the same Idempotency-Key to get its outcome.",
    codes=("backend_unavailable",),
    headers=RETRY_AFTER,
)
BAD_IDEMPOTENCY_KEY = Problems(
    400,
    "a malformed Idempotency-Key",
    codes=("validation_error",),
    extra=ValidationProblem,
)
NOT_YOUR_HOLD = Problems(403, "the hold belongs to another user", codes=("not_your_hold",))
HOLD_NOT_FOUND = Problems(
    404, "no such hold (or a hold id that is not a UUID)", codes=("hold_not_found",)
)

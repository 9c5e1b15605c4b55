"""The answers of a confirm that does not book: each problem, said once."""

from __future__ import annotations

from typing import Any

from booking_worker.context import Reply
from ticketing.problems import Problem


def problem_reply(status: int, code: str, detail: str, **extra: Any) -> Reply:
    return status, Problem(status, code, detail, **extra).to_dict()


def hold_not_found() -> Reply:
    return problem_reply(404, "hold_not_found", "No such hold.")


def hold_expired() -> Reply:
    return problem_reply(409, "hold_expired", "The hold expired; its seats may have been released.")


def payment_failed(code: str | None) -> Reply:
    return problem_reply(
        402,
        "payment_failed",
        "The payment was declined; the hold is kept until it expires.",
        decline_code=code,
    )


def payment_unavailable() -> Reply:
    return problem_reply(
        503,
        "backend_unavailable",
        "The payment provider did not answer; the hold is kept. Retry with the same"
        " Idempotency-Key to complete the payment or learn its outcome.",
    )


def payment_in_progress() -> Reply:
    """Another copy of this payment, or another payment of the hold, is with Stripe now.
    Never stored as the command's answer (booking_worker.commands): a retry of the same
    request must find out how that payment ended."""
    return problem_reply(
        409, "payment_in_progress", "This payment is being made right now; retry shortly."
    )

"""What a hand-made nasty request's answer must be, whoever gave it (nginx or a service):
never a 5xx, never text/plain, a refusal (4xx) always problem+json, and the answer one the
OpenAPI document describes for the route (tests/contract's checker)."""

from __future__ import annotations

from tests.contract import capture
from tests.contract.checker import media_type
from tests.fuzz.wire import Answer


def faults(method: str, path: str, answer: Answer, refusal: bool = True) -> list[str]:
    """Everything wrong with ``answer`` to ``method`` on ``path`` (as the checker should
    match it: percent-encoded). ``refusal``: only a 4xx will do."""
    found = []
    media = media_type(answer.content_type or "")
    excerpt = answer.body[:300]
    if answer.status >= 500 or answer.status < 100:
        found.append(f"answered {answer.status}: {excerpt!r}")
    if refusal and not 400 <= answer.status < 500:
        found.append(f"not refused: {answer.status} {excerpt!r}")
    if answer.status >= 400 and media != "application/problem+json":
        found.append(f"a {answer.status} as {answer.content_type!r}, not problem+json: {excerpt!r}")
    found.extend(
        str(violation)
        for violation in capture.contract().check(
            method, path, answer.status, answer.content_type, answer.body
        )
    )
    return found


def answered_well(method: str, path: str, answer: Answer, refusal: bool = True) -> None:
    found = faults(method, path, answer, refusal)
    assert not found, f"{method} {path[:200]}:\n  - " + "\n  - ".join(found)

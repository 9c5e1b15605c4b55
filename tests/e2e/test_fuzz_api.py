"""Every documented operation, fuzzed through the gateway: requests drawn from the OpenAPI
document's own schemas (tests/fuzz), valid and invalid, with no token, a fan's and an
admin's. No answer may be a 5xx, and every answer must be one the document describes
(status, content type and body schema; tests/contract's checker).

Bounded for CI: ``FUZZ_EXAMPLES`` requests in all (default 2,000), shared out among the
operations; deterministic (derandomized) unless ``FUZZ_SEED`` asks for a seed of its own.
Changes (PATCH of events and queues, joins) reach only the events this module creates.
"""

from __future__ import annotations

import http.client
import os
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.contract import capture
from tests.e2e.stack import Stack, dev_token, queue_event
from tests.fuzz import wire
from tests.fuzz.judge import faults
from tests.fuzz.operations import Pools, Request, operation_requests
from tests.fuzz.schemas import Schemas
from tests.servers import RUN_ID

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ_SEED = os.environ.get("FUZZ_SEED")
# Limits count per user: the requests are shared out among many of each.
FANS = 24
ADMINS = 8
SHOWN = 15
# The websocket upgrade is a handshake, not a request/reply: the nasty tests cover it.
SKIPPED = frozenset({("GET", "/queue/{event_id}/ws")})


def _operations() -> list[tuple[str, str]]:
    document = capture.contract().document
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
        and (method.upper(), path) not in SKIPPED
    ]


OPERATIONS = _operations()
PER_OPERATION = max(1, FUZZ_EXAMPLES // len(OPERATIONS))


@dataclass
class World:
    pools: Pools
    fans: list[str]
    admins: list[str]

    def token(self, request: Request, pick: int) -> str | None:
        if request.who == "admin":
            return self.admins[pick % len(self.admins)]
        return self.fans[pick % len(self.fans)] if request.who == "fan" else None


@dataclass
class Tally:
    """Across the module: what was sent, how it was answered, how long it took."""

    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[int] | None = None

    def add(self, status: int, seconds: float) -> None:
        self.sent += 1
        self.seconds += seconds
        if self.statuses is None:
            self.statuses = Counter()
        self.statuses[status] += 1


TALLY = Tally()


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    admins = [dev_token(stack, f"fuzz-admin-{n}-{RUN_ID}", ["admin"]) for n in range(ADMINS)]
    fans = [dev_token(stack, f"fuzz-fan-{n}-{RUN_ID}", []) for n in range(FANS)]
    own = [queue_event(stack, admins[0]) for _ in range(2)]
    status, _, page = stack.request("GET", f"/events/{own[0]['id']}/tickets?limit=5")
    assert status == 200 and isinstance(page, dict), page
    tickets = tuple(ticket["id"] for ticket in page["items"])
    events = tuple(event["id"] for event in own)
    pools = Pools(
        events=events,
        read_events=(*events, 1, 2, 300),
        tickets=tickets,
        static=("queue.js", "style.css", "common.js", "admin.js", "nothing.js"),
        body_ids={
            "event_id": events,
            "venue_id": tuple(event["venue"]["id"] for event in own),
            "performer_id": tuple(event["performer"]["id"] for event in own),
            "ticket_id": tickets,
        },
    )
    return World(pools, fans, admins)


def _settings() -> settings:
    # No shrinking: every example is one request to a shared stack, and the test reports
    # all the failing requests it saw rather than one minimal one.
    return settings(
        max_examples=PER_OPERATION,
        derandomize=FUZZ_SEED is None,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("method", "template"), [pytest.param(*op, id=" ".join(op)) for op in OPERATIONS]
)
def test_operation_answers_as_documented(
    stack: Stack, world: World, method: str, template: str
) -> None:
    document = capture.contract().document
    operation = document["paths"][template][method.lower()]
    requests = operation_requests(Schemas(document), method, template, operation, world.pools)
    problems: list[str] = []
    statuses: Counter[str] = Counter()

    @_settings()
    @given(request=requests)
    def send(request: Request) -> None:
        started = time.monotonic()
        try:
            answer = wire.send(
                stack.base,
                request.method,
                request.path,
                body=request.body,
                headers=request.headers,
                token=world.token(request, TALLY.sent),
                source=TALLY.sent + 1,
            )
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{request}\n      no answer: {exc!r}")
            return
        TALLY.add(answer.status, time.monotonic() - started)
        statuses[f"{request.who} {answer.status}"] += 1
        found = faults(request.method, request.path, answer, refusal=False)
        problems.extend(f"{request}\n      {fault}" for fault in found)

    if FUZZ_SEED is not None:
        send = seed(int(FUZZ_SEED))(send)
    send()
    where = f"seed: {FUZZ_SEED or 'derandomized'}"
    print(
        f"fuzz {method} {template}: {sum(statuses.values())} requests ({where}), "
        f"by who and status {dict(sorted(statuses.items()))}, "
        f"module so far: {TALLY.sent} requests, {TALLY.seconds:.1f} s waiting for answers"
    )
    shown = "\n  - ".join(problems[:SHOWN])
    assert not problems, (
        f"{len(problems)} faults in {sum(statuses.values())} answers ({where}); "
        f"5xx, or not as documented:\n  - {shown}"
    )

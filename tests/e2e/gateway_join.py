"""Plain helpers of the gateway-join tests (tests/e2e/test_gateway_join_*.py): a join
through the gateway or straight to a waitingroom process, the stack's settings, a queue
ticket's claims, the wait until every nginx worker answers a new event's joins, and the
gateway's own metrics. Their fixtures (an admin token, a paused event on sale) are in
tests/e2e/conftest.py."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack
from tests.servers import RUN_ID
from tests.support import wait_until
from ticketing.auth import issue_dev_token
from ticketing.config import Settings

GATEWAY = "gateway"


def _join(
    stack: Stack,
    event_id: int | str,
    token: str | None,
    body: object = None,
    base: str | None = None,
) -> tuple[int, dict[str, str], object]:
    return stack.request("POST", f"/queue/{event_id}/join", body, token=token, base=base)


def _direct(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.waitingroom_ports[0]}"


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.env)


def _payload(ticket: str) -> str:
    payload = ticket.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def _claims(ticket: str) -> dict:
    return json.loads(_payload(ticket))


def _wait_for_gateway(stack: Stack, event_id: int) -> None:
    """Until every nginx worker answers this new event's joins: each refreshes its snapshot
    of queue-enabled events every second, so a second after one has it, all have. Each
    probe is a fan of its own (one fan asking 20 times a second meets its limit)."""
    settings, probes = _settings(stack), iter(range(10_000))

    def answered() -> bool:
        token = issue_dev_token(settings, f"gw-probe-{next(probes)}-{RUN_ID}", [])
        return _join(stack, event_id, token["access_token"])[1].get("X-Queue-Join") == GATEWAY

    wait_until(answered, 15, "the gateway to answer the new event's joins")
    # Not a wait for something to show: which worker answers a probe is nginx's choice, and
    # none tells when it read the snapshot. Its cache's age bound (a second) is the deadline.
    time.sleep(1.1)


def _gateway_metrics(stack: Stack) -> str:
    port = stack.env["TICKETING_GATEWAY_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample of the gateway's metrics, read by prometheus_client's own parser (which
    also holds the Lua-written exposition to the format); 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0

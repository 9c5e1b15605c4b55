"""The gateway's own queue join counts a fan's per-address limit under the client's
address: the one a trusted proxy named in X-Forwarded-For (nginx real_ip), as the rest of
the gateway and the services do; never an address the fan names for itself."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from tests.e2e.stack import Stack, dev_token, queue_event
from tests.servers import RUN_ID
from ticketing.auth import issue_dev_token
from ticketing.config import Settings

GATEWAY = "gateway"


@pytest.fixture(scope="module")
def event_id(stack: Stack) -> int:
    admin = dev_token(stack, f"addr-ops-{RUN_ID}", ["admin"])
    event = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event}", {"paused": True}, token=admin
    )
    assert status == 200, body
    return int(event)


def _counted_under(stack: Stack, event_id: int, headers: dict[str, str], n: int) -> set[str]:
    """Join as a new fan with ``headers``, answered by the gateway; the per-address keys
    the join left in Redis right after (each lives about a second)."""
    settings = Settings.from_env(stack.env)
    token = issue_dev_token(settings, f"addr-fan-{n}-{RUN_ID}", [])["access_token"]
    redis = Redis.from_url(settings.redis_url)
    try:
        for _ in range(50):  # until a worker has the new event (its snapshot is a second old)
            status, answer, body = stack.request(
                "POST", f"/queue/{event_id}/join", token=token, headers=headers
            )
            assert status == 200, body
            if answer.get("X-Queue-Join") == GATEWAY:
                break
            token = issue_dev_token(settings, f"addr-fan-{n}-{_}-{RUN_ID}", [])["access_token"]
            time.sleep(0.1)
        else:
            pytest.fail(f"the gateway never answered the join itself: {answer}")
        pattern = f"{settings.redis_prefix}q:{{{event_id}}}:rl:ip:*"
        return {key.decode().rpartition(":ip:")[2] for key in redis.scan_iter(pattern)}
    finally:
        redis.close()


def test_the_gateway_join_limits_the_forwarded_client(stack: Stack, event_id: int):
    # The stack's gateway trusts loopback (the default), where this test's requests come
    # from: here it is the load balancer, naming the fan at 203.0.113.21.
    forwarded = {"X-Forwarded-For": "203.0.113.21"}
    assert "203.0.113.21" in _counted_under(stack, event_id, forwarded, 1)
    # Control: an X-Real-IP of the fan's own names nobody; the peer is counted.
    spoofed = {"X-Real-IP": "203.0.113.22"}
    counted = _counted_under(stack, event_id, spoofed, 2)
    assert "203.0.113.22" not in counted and "127.0.0.1" in counted

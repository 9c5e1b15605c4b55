"""The waiting room on a primary that Sentinel manages (TICKETING_REDIS_URL=
redis+sentinel://...): /healthz names the mode and the nodes the sentinels know; the
primary killed (kill -9) while the queue runs, the sentinels promote a replica, the
service finds it, and joins and status resume within 15 s with every fan in their place
and nobody admitted twice."""

from __future__ import annotations

from tests.integration.booking.support import call, open_client
from tests.integration.redis_cluster.support import RESUME_SECONDS, Line, joins_resume
from tests.support import settings_with


async def test_a_replica_is_promoted_and_the_line_goes_on(
    queue_settings, worker, pool, sentinel_set
) -> None:
    settings = settings_with(queue_settings, redis_url=sentinel_set.url())
    client = await open_client(settings)
    try:
        status, body, _ = await call(client, "GET", "/healthz", {})
        assert status == 200, body
        assert body["components"]["redis"] == {
            "status": "ok",
            "mode": "sentinel",
            "nodes": 3,
            "healthy": 3,
        }
        line = await Line.moving(client, settings, pool)
        await line.admitted(3)
        primary = sentinel_set.primary()
        sentinel_set.kill(primary)
        resumed = await joins_resume(client, settings, line.event)
        print(f"\njoins resumed {resumed:.1f} s after the Sentinel-managed primary was killed")
        assert resumed < RESUME_SECONDS
        await line.check()
        assert sentinel_set.primary() != primary
        await line.admitted(3)
    finally:
        await client.close()

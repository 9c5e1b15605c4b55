"""The gateway's join against a Redis that is not the machine's (a cluster or a Sentinel set
of deploy/redis_cluster.py): a gateway of its own, rendered by deploy/render_nginx.py for
that Redis's URL and run as deploy/gateway.py runs it, with one worker (one slot map, one
cached primary: what a test did to it is what the next join meets); the queue-enabled
events published as the waitingroom publishes them; a fan's join; the gateway's metrics.

Nothing listens on its waitingroom port: a join the gateway passes on is its 502
(backend_unavailable), and its metrics say why it passed it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from deploy.gateway import command
from deploy.render_nginx import write
from tests.e2e.gateway_join import _metric
from tests.servers import RUN_ID
from tests.support import free_port, wait_until
from ticketing.auth import issue_dev_token
from ticketing.config import Settings
from waitingroom.queue import presale_gate
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.scripts import PLACE

GATEWAY = "gateway"  # X-Queue-Join of a join the gateway answered itself


@dataclasses.dataclass
class Gateway:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    def join(self, event_id: int, user: str) -> tuple[int, str | None, dict]:
        """A fan's join: the status, who answered (``GATEWAY``, or None when it was
        passed on) and the body."""
        token = issue_dev_token(self.settings, f"{user}-{RUN_ID}", [])["access_token"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.settings.gateway_port}/queue/{event_id}/join",
            method="POST",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.headers.get("X-Queue-Join"), json.loads(resp.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get("X-Queue-Join"), json.loads(error.read())

    def metrics(self) -> str | None:
        url = f"http://127.0.0.1:{self.settings.gateway_metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return None

    def fallbacks(self, reason: str) -> float:
        name = "ticketing_gateway_queue_join_fallbacks_total"
        return _metric(self.metrics() or "", name, reason=reason)

    def reroutes(self, cause: str) -> float:
        return _metric(self.metrics() or "", "ticketing_gateway_redis_reroutes_total", cause=cause)


@contextlib.contextmanager
def running_gateway(root: Path, redis_url: str) -> Iterator[Gateway]:
    settings = dataclasses.replace(
        Settings(),
        redis_url=redis_url,
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        waitingroom_port=free_port(),
        waitingroom_processes=1,
        frontdoor_processes=0,
    )
    root.mkdir(parents=True, exist_ok=True)
    conf, prefix, log = root / "nginx.conf", root / "nginx", root / "nginx.log"
    write(settings, conf, prefix)
    conf.write_text(re.sub(r"(?m)^worker_processes \d+;", "worker_processes 1;", conf.read_text()))
    with log.open("wb") as out:
        process = subprocess.Popen(
            command(conf, prefix),
            stdout=out,
            stderr=subprocess.STDOUT,
            # deploy/gateway.py gives nginx its keys from these settings (the test's defaults)
            env={"PATH": "/usr/sbin:/usr/bin:/bin", "TICKETING_ENV": "test"},
        )
    gateway = Gateway(settings, process, log)
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            return gateway.metrics() is not None

        wait_until(up, 20, "the gateway's metrics listener")
        yield gateway
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def publish_events(client: redis.Redis | redis.RedisCluster, *event_ids: int) -> None:
    """What the waitingroom's count publishes (waitingroom/queue/events.py): these events,
    queue-enabled and on sale since a minute ago; each one's presale marker saying it has
    no registered presale (waitingroom/queue/presale_gate.py writes it from the record: the
    gateway hands an event's joins to the waitingroom while it is missing); and PLACE loaded
    as its processes load it at start (redis-py's cluster client loads a script on every
    primary)."""
    on_sale = datetime.now(UTC) - timedelta(minutes=1)
    snapshot = [QueueEvent(e, f"event {e}", on_sale, None).to_json() for e in event_ids]
    client.set(Settings().redis_prefix + "queue:events", json.dumps(snapshot), ex=3600)
    for event_id in event_ids:
        client.set(queue_key(event_id, presale_gate.MARKER), 0, ex=3600)
    client.script_load(PLACE)


def queue_key(event_id: int, name: str) -> str:
    return f"{Settings().redis_prefix}q:{{{event_id}}}:{name}"


def place_of(node: redis.Redis, event_id: int, user: str) -> float | None:
    """Where ``user`` waits in ``event_id``'s line, as the node itself holds it."""
    with node:
        score: float | None = node.zscore(queue_key(event_id, "waiting"), f"{user}-{RUN_ID}")
        return score

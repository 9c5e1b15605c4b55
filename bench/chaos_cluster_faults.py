"""The cluster chaos run's faults: one node of a cluster lost while the on-sale runs.

Each is a kill -9 (no goodbye to its peers, as when its machine dies) of the node that
matters most to the on-sale: the Redis primary serving the slot of the event's queue (its
replica is promoted by the cluster; with Sentinel, the primary the sentinels name, and they
promote a replica), the RabbitMQ node leading the event's booking
partition queue, Typesense's Raft leader, the PostgreSQL primary (keeper and server:
pg_auto_failover's monitor promotes the standby). The cluster carries on without it; after
``absence`` seconds (and at least SETTLE seconds after the cluster took over) the node is
started again on its data, as a restart policy would, and the fault returns once it has
rejoined (a Redis node a replica in sync, a RabbitMQ node counted running by the cluster, a
Typesense node healthy with a leader elected, the old primary the new one's standby).
bench/chaos_faults.py's Schedule runs them one at a time, each followed by its quiet
window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from bench.chaos_cluster_servers import ClusterServers
from bench.chaos_servers import wait_until
from ticketing.config import Settings
from ticketing.messages import BOOKING_QUEUE_PREFIX, booking_routing_key

SETTLE = 5.0  # seconds the cluster runs on its new leader before the lost node returns
TAKEOVER_LIMIT = 120.0  # pg_auto_failover's own timeouts promote in about 50 s
REJOIN_LIMIT = 180.0


@dataclass
class Marks:
    """When things happened to one fault's node (wall clock)."""

    node: str
    killed: float
    taken_over: float | None = None  # a new leader, a promoted standby
    restarted: float | None = None
    rejoined: float | None = None


class NodeLosses:
    LABELS: ClassVar[dict[str, str]] = {
        "redis": "kill -9 Redis primary (the event's queue)",
        "rabbitmq": "kill -9 RabbitMQ node (partition leader)",
        "typesense": "kill -9 Typesense node (leader)",
        "postgres": "kill -9 PostgreSQL primary",
    }

    def __init__(
        self,
        servers: ClusterServers,
        settings: Settings,
        event_id: int,
        absence: float,
        *,
        control: bool = False,
    ) -> None:
        self.servers, self.settings = servers, settings
        self.event_id, self.absence = event_id, absence
        # The control run's services know one node of each cluster, the first: it is the
        # one lost (the first PostgreSQL node is the primary anyway).
        self.control = control
        self.marks: dict[str, Marks] = {}

    def run(self, key: str) -> str:
        fault: Callable[[], str] = getattr(self, key)
        return fault()

    def _lose(
        self,
        key: str,
        node: str,
        kill: Callable[[], object],
        taken_over: Callable[[], bool],
        restart: Callable[[], object],
        rejoined: Callable[[], bool],
    ) -> str:
        marks = self.marks[key] = Marks(node, time.time())
        kill()
        try:
            wait_until(f"{key}: the cluster to take over", taken_over, TAKEOVER_LIMIT)
            marks.taken_over = time.time()
        except SystemExit:  # said in the detail and failed by the checks; the node returns
            pass
        away_until = max(marks.killed + self.absence, (marks.taken_over or 0) + SETTLE)
        time.sleep(max(0.0, away_until - time.time()))
        marks.restarted = time.time()
        restart()
        wait_until(f"{key}: {node} to rejoin", rejoined, REJOIN_LIMIT)
        marks.rejoined = time.time()
        took = (
            f"taken over in {marks.taken_over - marks.killed:.1f} s"
            if marks.taken_over
            else f"NOT taken over in {TAKEOVER_LIMIT:.0f} s"
        )
        return (
            f"kill -9 {node}; {took}; started again {marks.restarted - marks.killed:.1f} s "
            f"after the kill, rejoined in {marks.rejoined - marks.restarted:.1f} s"
        )

    def redis(self) -> str:
        setup = self.servers.redis_setup
        if setup is None:
            raise SystemExit("chaos: no Redis node to lose (--redis single)")
        primary = self.servers.event_primary(self.event_id)
        # The control's services know the Sentinel set's first primary (a Redis Cluster
        # client learns every node from any: no control for it).
        sentinel = self.servers.redis_sentinel
        control = self.control and sentinel is not None
        if sentinel is not None and control and primary is not sentinel.data[0]:
            raise SystemExit(f"chaos: the sentinels' primary is {primary.name}, not the first")
        which = (
            "the primary the sentinels name"
            if sentinel is not None
            else "the primary serving the slot"
        )
        detail = self._lose(
            "redis",
            f"Redis {primary.name} ({which}" + (", the services' only node)" if control else ")"),
            lambda: setup.kill(primary),
            lambda: self.servers.event_primary(self.event_id) is not primary,
            lambda: setup.start(primary),
            lambda: self.servers.redis_rejoined(primary),
        )
        if not control:
            return detail
        # As with PostgreSQL's: the control's services know only the old primary, a replica
        # now, and would write to nothing to the end of the run.
        began = time.monotonic()
        self.servers.sentinel_failover_to(primary)
        took = time.monotonic() - began
        return f"{detail}; failed over back to {primary.name} ({took:.1f} s more) for the control"

    def rabbitmq(self) -> str:
        queue = BOOKING_QUEUE_PREFIX + booking_routing_key(
            self.event_id, self.settings.booking_partitions
        )
        leader = (
            self.servers.rabbitmq.nodes[0] if self.control else self.servers.queue_leader(queue)
        )
        if leader is None:
            raise SystemExit(f"chaos: no leader found for {queue}")

        def taken_over() -> bool:
            new = self.servers.queue_leader(queue)
            return new is not None and new is not leader

        return self._lose(
            "rabbitmq",
            f"{leader.node} ("
            + ("the services' only node" if self.control else "leader")
            + f" of {queue})",
            leader.kill,
            taken_over,
            leader.start,
            self.servers.rabbit_rejoined,
        )

    def typesense(self) -> str:
        cluster = self.servers.typesense
        leader = 0 if self.control else cluster.leader()
        if leader is None:
            raise SystemExit("chaos: the Typesense cluster has no leader")
        return self._lose(
            "typesense",
            f"Typesense node-{leader} ({cluster.nodes[leader].url}, "
            + ("the services' only node)" if self.control else "the leader)"),
            lambda: cluster.kill(leader),
            lambda: cluster.leader() not in (None, leader),
            lambda: cluster.start_node(leader),
            lambda: cluster.healthy(leader) and cluster.ready(),
        )

    def postgres(self) -> str:
        formation = self.servers.postgres
        primary = formation.primary()
        if primary is None:
            raise SystemExit(f"chaos: the formation has no primary: {formation.state()}")
        standby = formation.other(primary)
        detail = self._lose(
            "postgres",
            f"PostgreSQL {primary} ({formation.nodes[primary].name}, the primary; "
            f"{standby} its standby)",
            lambda: formation.kill_node(primary),
            lambda: formation.primary() == standby,
            lambda: formation.rejoin(primary),
            lambda: formation.settled(standby),
        )
        if not self.control:
            return detail
        # The control's services know only the old primary, a standby now: without this
        # they would write to nothing to the end of the run (measured until its return).
        formation.switchover()
        took = wait_until("the switchover", lambda: formation.settled(primary), REJOIN_LIMIT)
        return f"{detail}; switched back to {primary} ({took:.1f} s more) for the control"

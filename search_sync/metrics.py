"""Prometheus metrics of search_sync (served on settings.search_sync_metrics_port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SERVICE = "search_sync"

SYNC_LAG = Histogram(
    "ticketing_search_sync_lag_seconds",
    "Time from an outbox row's creation to its change being searchable.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
UPSERTS = Counter("ticketing_search_sync_upserts_total", "Event documents upserted into Typesense.")
DELETES = Counter(
    "ticketing_search_sync_deletes_total", "Documents of deleted events removed from Typesense."
)
FAILURES = Counter(
    "ticketing_search_sync_failures_total",
    "Batches that failed and were requeued, by the dependency that failed.",
    ["dependency"],
)
DEAD_LETTERED = Counter(
    "ticketing_search_sync_dead_lettered_total",
    "Messages sent to the dead-letter queue, by kind of problem.",
    ["kind"],
)
RELAYED = Counter(
    "ticketing_outbox_relayed_total", "Outbox rows published to RabbitMQ by the relay."
)

"""search_sync keeps Typesense in step with Postgres.

Changes travel outbox row -> :mod:`search_sync.relay` -> RabbitMQ -> :mod:`search_sync.consumer`
-> Typesense. Messages only say *which* event changed; the consumer re-reads the current view
from Postgres, so delivery order and duplicates do not matter. :mod:`search_sync.reindex`
rebuilds the whole index into a fresh collection and swaps the alias, with no downtime.
"""

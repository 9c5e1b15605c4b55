"""Consumer: applies ``catalog.event.changed`` messages to Typesense in deduplicated batches.

A batch is acknowledged only after Typesense (and the view cache) hold the current views of
its events; when a dependency is down the batch is requeued after a backoff, so nothing is
lost. A message that can never succeed (bad JSON, unknown version, a document Typesense
refuses) goes to the dead-letter queue with the reason in a header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import typesense
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from search_sync.indexer import sync_events
from search_sync.metrics import DEAD_LETTERED, DELETES, FAILURES, SERVICE, SYNC_LAG, UPSERTS
from search_sync.topology import CREATED_AT_HEADER, ERROR_HEADER, QUEUE, declare_topology
from ticketing.cache import invalidate
from ticketing.config import Settings
from ticketing.consumer_runtime import ConsumerConfig, Link, run_consumer
from ticketing.dead_letters import dead_letter
from ticketing.dependencies import REDIS_ERRORS, DependencyDown
from ticketing.lifecycle import Backoff, requeue_after_backoff
from ticketing.messages import MessageError, parse_event_changed
from ticketing.metrics import DEPENDENCY_ERRORS
from ticketing.redis_connect import RedisClient

log = logging.getLogger(__name__)

Message = AbstractIncomingMessage


class SearchSyncConsumer:
    def __init__(
        self,
        settings: Settings,
        *,
        pool: asyncpg.Pool,
        redis: RedisClient,
        typesense_client: typesense.AsyncClient,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.typesense = typesense_client
        self.backoff = Backoff()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        config = ConsumerConfig(
            what="search_sync consumer",
            service=SERVICE,
            # Twice a batch, so the next batch is already on its way while one is applied.
            prefetch=2 * self.settings.sync_batch_max,
            batch_max=self.settings.sync_batch_max,
            batch_wait_seconds=self.settings.sync_batch_wait_ms / 1000,
            publisher_confirms=True,
        )
        await run_consumer(self.settings.amqp_url, config, self._attach, stop)

    async def _attach(self, link: Link) -> _Attached:
        topology = await declare_topology(link.channel, self.settings.amqp_queue_type)
        queue = topology.named(QUEUE)
        await link.consume(queue)
        log.info("search_sync consumer started on %s", queue.name)
        return _Attached(self, topology.dead_exchange)

    async def process(
        self, batch: Sequence[Message], dead_exchange: AbstractExchange, stop: asyncio.Event
    ) -> None:
        valid: list[tuple[Message, int]] = []
        for message in batch:
            try:
                valid.append((message, _event_id_of(message)))
            except MessageError as exc:
                await _dead_letter(dead_exchange, message, str(exc), "bad_message")
        if not valid:
            return
        event_ids = sorted({event_id for _, event_id in valid})
        try:
            outcome = await sync_events(
                self.pool, self.typesense, self.settings.typesense_collection, event_ids
            )
            await self._invalidate(event_ids)
        except DependencyDown as exc:
            FAILURES.labels(exc.dependency).inc()
            DEPENDENCY_ERRORS.labels(SERVICE, exc.dependency).inc()
            log.warning(
                "search_sync batch of %d events failed, requeueing: %s", len(event_ids), exc
            )
            await requeue_after_backoff(self.backoff, stop, [m for m, _ in valid])
            return
        self.backoff.reset()
        UPSERTS.inc(outcome.upserted)
        DELETES.inc(outcome.deleted)
        now = time.time()
        for message, event_id in valid:
            if event_id in outcome.rejected:
                reason = f"typesense refused the document: {outcome.rejected[event_id]}"
                await _dead_letter(dead_exchange, message, reason, "rejected_document")
                continue
            await message.ack()
            created_at = _created_at(message)
            if created_at is not None:
                SYNC_LAG.observe(max(0.0, now - created_at))
        log.info(
            "search_sync applied %d messages: upserted=%d deleted=%d rejected=%d",
            len(valid),
            outcome.upserted,
            outcome.deleted,
            len(outcome.rejected),
        )

    async def _invalidate(self, event_ids: list[int]) -> None:
        try:
            await invalidate(self.redis, self.settings.redis_prefix, event_ids)
        except REDIS_ERRORS as exc:
            # A stale cached view would outlive the change for a whole TTL: retry instead.
            raise DependencyDown("redis", exc) from exc


@dataclass(frozen=True, slots=True)
class _Attached:
    consumer: SearchSyncConsumer
    dead_exchange: AbstractExchange

    async def process(self, batch: list[Message], stop: asyncio.Event) -> None:
        await self.consumer.process(batch, self.dead_exchange, stop)

    async def detach(self) -> None:
        pass


def _event_id_of(message: Message) -> int:
    try:
        body = json.loads(message.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"bad JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MessageError(f"expected a JSON object, got {type(body).__name__}")
    return parse_event_changed(body)


def _created_at(message: Message) -> float | None:
    raw = (message.headers or {}).get(CREATED_AT_HEADER)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


async def _dead_letter(
    exchange: AbstractExchange, message: Message, reason: str, kind: str
) -> None:
    """Park a message that can never succeed, with the reason, and drop it from the queue."""
    await dead_letter(exchange, message, reason, ERROR_HEADER)
    DEAD_LETTERED.labels(kind).inc()
    log.warning(
        "search_sync dead-lettered message_id=%s kind=%s reason=%s",
        message.message_id,
        kind,
        reason,
    )

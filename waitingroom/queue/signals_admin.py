"""One person, one place for operators: the rule's fields in a queue's figures, what a
PATCH of the rule does at once (under back_of_line, every account already in a cluster
moved to the back of the line), and an event's clusters (``GET
/admin/queues/{event_id}/clusters``, the console's table)."""

from __future__ import annotations

import logging
from typing import Any

from ticketing.dependencies import POSTGRES_ERRORS
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.runtime import QueueRuntime
from waitingroom.queue.signals_join import cluster_kind, signals_of
from waitingroom.queue.signals_rules import DEFAULT_THRESHOLD, ClusterRule
from waitingroom.queue.signals_store import SAMPLE

log = logging.getLogger(__name__)

# Most clusters of each kind the operators' list shows (the largest first).
MOST_CLUSTERS = 100


async def rule_of(runtime: QueueRuntime, event_id: int) -> ClusterRule:
    rule, _ = await signals_of(runtime).store.rule(event_id, DEFAULT_THRESHOLD, fresh=True)
    return rule


async def apply_rule(runtime: QueueRuntime, event: QueueEvent, before: ClusterRule) -> int:
    """After a PATCH: when back_of_line came into force, or its K went down, every account
    of every cluster over K (and of every card cluster) not moved before is moved now;
    how many were."""
    parts = signals_of(runtime)
    after = await rule_of(runtime, event.event_id)
    if after.rule != "back_of_line":
        return 0
    if before.rule == "back_of_line" and after.threshold >= before.threshold:
        return 0
    try:
        cards = await parts.cards.read(event.event_id)
    except POSTGRES_ERRORS as exc:  # the card clusters' fans are moved at their next join
        log.warning("card clusters unavailable: event_id=%s %s", event.event_id, exc)
        cards = {}
    card_moves = [(u, f"card:{fp}") for fp, users in cards.items() for u in users]
    moved = await parts.store.sweep(event.event_id, event.on_sale_ms, DEFAULT_THRESHOLD, card_moves)
    log.info(
        "queue cluster rule: event_id=%s rule=%s k=%s moved=%s",
        event.event_id,
        after.rule,
        after.threshold,
        moved,
    )
    return moved


async def clusters_body(runtime: QueueRuntime, event: QueueEvent) -> dict[str, Any]:
    """The event's clusters, its rule and how many fans were moved. PostgreSQL failing
    leaves the cards out (``cards_unavailable``), not the rest."""
    parts = signals_of(runtime)
    rule = await rule_of(runtime, event.event_id)
    found = await parts.store.clusters(event.event_id, rule.threshold, MOST_CLUSTERS)
    items = [
        {
            "kind": cluster_kind(c.name),
            "key": c.name.partition(":")[2],
            "accounts": c.accounts,
            "sample": c.sample,
        }
        for c in found
    ]
    cards_unavailable = False
    try:
        cards = await parts.cards.read(event.event_id, MOST_CLUSTERS)
    except POSTGRES_ERRORS as exc:
        log.warning("card clusters unavailable: event_id=%s %s", event.event_id, exc)
        cards, cards_unavailable = {}, True
    items += [
        {"kind": "card", "key": fp, "accounts": len(users), "sample": sorted(users)[:SAMPLE]}
        for fp, users in cards.items()
    ]
    return {
        "event_id": event.event_id,
        **rule.to_json(),
        "moved": await parts.store.moved_count(event.event_id),
        "clusters": items,
        "cards_unavailable": cards_unavailable,
    }

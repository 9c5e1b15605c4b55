"""Every key one queue script touches hashes to one Redis Cluster slot."""

import re

from redis.asyncio import Redis
from redis.crc import key_slot

from ticketing.config import Settings
from waitingroom.queue import scripts as queue_scripts
from waitingroom.queue.store import QueueStore


def test_an_events_keys_share_one_cluster_slot():
    store = QueueStore(Redis(), Settings(redis_prefix="tk:"))  # no connection is made
    # with the per-fan and per-address limits the PLACE script counts
    keys = store.keys(42, *queue_scripts.NAMES, "rl:user:alice", "rl:ip:10.0.0.1")
    assert {key_slot(k.encode()) for k in keys} == {key_slot(b"{42}")}
    assert len({key_slot(k.encode()) for k in store.keys(43, *queue_scripts.NAMES)}) == 1


def test_scripts_touch_only_the_keys_they_are_given():
    # Cluster routes a script by its KEYS; a key built inside the script would escape it.
    for name in (
        "PLACE",
        "LEAVE",
        "TICK",
        "COMMIT",
        "DRAW",
        "POSITIONS",
        "CLAIM",
        "COUNT_BEGIN",
        "COUNT_APPLY",
    ):
        source = getattr(queue_scripts, name)
        for call in re.findall(r"redis\.call\('(\w+)', ([^,)]+)", source):
            command, first = call
            if command in ("TIME",):
                continue
            assert first.strip().startswith(
                (
                    "KEYS[",
                    "key",
                    "waiting",
                    "pre",
                    "active",
                    "seen",
                    "state",
                    "config",
                    "rate",
                    "fair",
                    "drawn",
                    "unclaimed",
                    "departed",
                )
            ), (
                name,
                command,
                first,
            )

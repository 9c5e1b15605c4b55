"""What a queue is set to: what operators set (``config``; the TICKETING_QUEUE_* defaults
for what they did not), the rate the admitters work to, and fields set in its ``state``
(auto mode's rate).

What operators set is on record in PostgreSQL (``queue_settings``, migration 0006,
:class:`SettingsRecord`); the event's ``config`` hash in Redis is the copy every tick and
status reads. Redis may lose it (a restart without its data): a paused queue must not
come back unpaused, nor a tuned rate as the default. So:

- A PATCH writes the record first, then the copy (:meth:`ConfigStore.write_config`).
- The copy carries the record's ``version``; a copy is written only over an older one (or
  none), so writes that cross (two PATCHes, a PATCH and a restore) leave the latest.
- Once a second the process that counts compares every queue's copy with the record and
  writes back what is missing or older (``waitingroom.queue.loops.restore_settings``):
  after a loss, and after a PATCH whose Redis write failed.
- Until then TICK admits nobody in that queue: a copy without ``version`` is "not yet
  known", never "the defaults" (see ``waitingroom.queue.scripts_admission``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from redis.typing import EncodableT, FieldT

from ticketing.config import Settings
from ticketing.domain.queue import QueueConfig
from ticketing.redis_connect import RedisClient
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS
from waitingroom.queue.scripts_admission import CONFIG_WRITE
from waitingroom.queue.store_keys import QueueKeys, text

# What an operator may set, as QueueConfig and the record's columns name it. The column
# names in the SQL below come from this fixed tuple, never from a request.
SETTINGS = (
    "admit_per_minute",
    "max_active",
    "paused",
    "session_seconds",
    "mode",
    "claim_seconds",
    "admission_margin_percent",
    "challenge_difficulty",
    "challenge_auto",
    # One person, one place (migration 0009): not QueueConfig's; read from the copy by
    # waitingroom.queue.signals_store.
    "cluster_rule",
    "cluster_threshold",
)

# Fields left out (None) keep what is on record: two operators changing different fields
# both win, as they did in Redis. The version is microseconds since the epoch and always
# grows by at least one: a change made after a backup of the record was restored still
# outranks a copy Redis kept from before.
_SAVE = f"""
INSERT INTO queue_settings AS s (event_id, version, updated_by, {", ".join(SETTINGS)})
VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, $2,
        {", ".join(f"${i}" for i in range(3, 3 + len(SETTINGS)))})
ON CONFLICT (event_id) DO UPDATE SET
    version = GREATEST(s.version + 1, EXCLUDED.version),
    updated_at = now(),
    updated_by = EXCLUDED.updated_by,
    {", ".join(f"{name} = COALESCE(EXCLUDED.{name}, s.{name})" for name in SETTINGS)}
RETURNING event_id, version, {", ".join(SETTINGS)}
"""  # noqa: S608 - the names are the fixed SETTINGS above
_LOAD = f"""
SELECT event_id, version, {", ".join(SETTINGS)}
FROM queue_settings WHERE event_id = ANY($1::bigint[])
"""  # noqa: S608 - the names are the fixed SETTINGS above


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """An event's settings on record: only what operators set (absent: the default)."""

    version: int
    fields: Mapping[str, int | bool | str]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredSettings:
        return cls(row["version"], {n: row[n] for n in SETTINGS if row[n] is not None})


# An event with nothing on record: its copy says so (version 0), and TICK admits under the
# defaults, as before.
NOTHING_SET = StoredSettings(0, {})


class SettingsRecord:
    """What operators set, on record in PostgreSQL (``queue_settings``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def save(self, event_id: int, changes: Mapping[str, Any], by: str) -> StoredSettings:
        """Record ``changes`` (QueueConfig's field names) and answer the whole record. Fails
        fast (a PATCH answers 503 rather than hang): a PostgreSQL error or timeout is
        raised, and whether it was recorded is then unknown (the once-a-second restore
        brings Redis to whatever was)."""
        values = [changes.get(name) for name in SETTINGS]
        async with self.pool.acquire(timeout=DEPENDENCY_TIMEOUT_SECONDS) as conn:
            row = await conn.fetchrow(
                _SAVE, event_id, by, *values, timeout=DEPENDENCY_TIMEOUT_SECONDS
            )
        if row is None:  # an upsert's RETURNING always has its row
            raise RuntimeError(f"event {event_id}: the settings were not recorded")
        return StoredSettings.from_row(row)

    async def load(self, event_ids: Iterable[int]) -> dict[int, StoredSettings]:
        """The settings on record of these events (those with none are left out)."""
        rows = await self.pool.fetch(_LOAD, list(event_ids))
        return {row["event_id"]: StoredSettings.from_row(row) for row in rows}


SETTINGS_RECORD_KEY = web.AppKey("queue_settings_record", SettingsRecord)


def set_rate(config: QueueConfig, auto_rate: float | None) -> float:
    """The rate the admitters work to (auto mode's, capped by the operator's)."""
    ceiling = float(config.admit_per_minute)
    if config.mode != "auto":
        return ceiling
    return min(ceiling, auto_rate or 0.0)


def _redis_value(value: int | bool | str) -> str | int:
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


class ConfigStore(QueueKeys):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._config_write = self.redis.register_script(CONFIG_WRITE)

    def default_config(self) -> QueueConfig:
        s = self.settings
        return QueueConfig(
            s.queue_admit_per_minute,
            s.queue_max_active,
            False,
            s.queue_session_seconds,
            s.queue_mode,
            s.admission_claim_seconds,
            s.queue_admission_margin_percent,
            s.challenge_default_difficulty,
        )

    def config_from(self, raw: dict[Any, Any]) -> QueueConfig:
        """The settings in force from the ``config`` hash. An empty one (nothing restored
        yet after a loss) reads as the defaults here, for figures and statuses, for at
        most about a second; TICK admits nobody meanwhile."""
        values = {text(k): text(v) for k, v in raw.items()}
        base = self.default_config()
        return QueueConfig(
            admit_per_minute=int(values.get("admit_per_minute", base.admit_per_minute)),
            max_active=int(values.get("max_active", base.max_active)),
            paused=values.get("paused", "0") == "1",
            session_seconds=int(values.get("session_seconds", base.session_seconds)),
            mode=values.get("mode", base.mode),
            claim_seconds=int(values.get("claim_seconds", base.claim_seconds)),
            admission_margin_percent=int(
                values.get("admission_margin_percent", base.admission_margin_percent)
            ),
            challenge_difficulty=int(values.get("challenge_difficulty", base.challenge_difficulty)),
            challenge_auto=values.get("challenge_auto", "0") == "1",
        )

    async def write_config(self, event_id: int, stored: StoredSettings) -> bool:
        """Copy the settings on record into Redis, unless the copy there is as new or
        newer; True if written. The whole record goes, not only a PATCH's fields: after a
        loss the copy may be gone, and a copy with one field would read every other one,
        ``paused`` too, as its default."""
        args: list[EncodableT] = [stored.version]
        for name, value in stored.fields.items():
            args += [name, _redis_value(value)]
        written = await self._config_write(keys=[self.key(event_id, "config")], args=args)
        return bool(int(written))

    async def config_versions(self, event_ids: Iterable[int]) -> dict[int, int | None]:
        """The record's version each copy holds (None: no copy, or one from before the
        record), in one round trip."""
        ids = list(event_ids)
        pipe = self.redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.hget(self.key(event_id, "config"), "version")
        held = await pipe.execute()
        return {
            event_id: None if version is None else int(text(version))
            for event_id, version in zip(ids, held, strict=True)
        }

    async def set_state(self, event_id: int, **fields: str | int | float) -> None:
        # Spelled out for the type checker: redis wants its own key type (Mapping keys are
        # invariant).
        mapping: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
        await self.redis.hset(self.key(event_id, "state"), mapping=mapping)

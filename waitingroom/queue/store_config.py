"""What a queue is set to: what operators set (``config``; the TICKETING_QUEUE_* defaults
for what they did not), the rate the admitters work to, and fields set in its ``state``
(auto mode's rate)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.typing import EncodableT, FieldT

from ticketing.domain.queue import QueueConfig
from waitingroom.queue.store_keys import QueueKeys, text


def set_rate(config: QueueConfig, auto_rate: float | None) -> float:
    """The rate the admitters work to (auto mode's, capped by the operator's)."""
    ceiling = float(config.admit_per_minute)
    if config.mode != "auto":
        return ceiling
    return min(ceiling, auto_rate or 0.0)


class ConfigStore(QueueKeys):
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
        )

    def config_from(self, raw: dict[Any, Any]) -> QueueConfig:
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
        )

    async def save_config(
        self, event_id: int, config: QueueConfig, fields: Iterable[str] | None = None
    ) -> None:
        values = {**config.to_json(), "paused": "1" if config.paused else "0"}
        chosen = set(values) if fields is None else set(fields)
        mapping: dict[FieldT, EncodableT] = {
            name: value for name, value in values.items() if name in chosen
        }
        if mapping:
            await self.redis.hset(self.key(event_id, "config"), mapping=mapping)

    async def set_state(self, event_id: int, **fields: str | int | float) -> None:
        # Spelled out for the type checker: redis wants its own key type (Mapping keys are
        # invariant).
        mapping: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
        await self.redis.hset(self.key(event_id, "state"), mapping=mapping)

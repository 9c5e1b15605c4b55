"""A queue's figures as a whole (:class:`Figures`), read in one round trip: a part of
:class:`waitingroom.queue.store.QueueStore`, over the settings in force
(:class:`waitingroom.queue.store_config.ConfigStore`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ticketing.domain.queue import QueueConfig, admission_pace, measured_rate_per_minute
from waitingroom.queue.store_config import ConfigStore, set_rate
from waitingroom.queue.store_keys import text


@dataclass(frozen=True, slots=True)
class Figures:
    """One event's queue as a whole, read in one round trip."""

    config: QueueConfig
    waiting: int
    pre_queue: int
    active: int
    admitted_total: int
    admitted_by_second: dict[int, int]
    drawn: bool
    sold_out: bool
    auto_rate: float | None
    measured_per_minute: float  # admissions actually made lately
    pace_per_minute: float = 0.0  # what waits are told by (ticketing.domain.queue.admission_pace)
    all_held: bool = False  # every seat left is in someone's hold (some may come back)
    unclaimed: int = 0  # admitted fans holding no seats yet
    seats_per_fan: float | None = None  # measured from the holds made (None: not yet)
    # A registered presale runs and every seat of its share is held or sold: nobody is
    # admitted until holds lapse or the general sale opens (general_sale_ms, Unix ms).
    presale_held: bool = False
    general_sale_ms: int = 0  # while a presale runs; 0 otherwise

    @property
    def effective_per_minute(self) -> float:
        return set_rate(self.config, self.auto_rate)


def _seats_per_fan(state: dict[str, str]) -> float | None:
    fans = int(state.get("hold_fans", 0))
    return None if fans == 0 else round(int(state.get("hold_seats", 0)) / fans, 2)


class FiguresStore(ConfigStore):
    async def figures(self, event_id: int) -> Figures:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(event_id, "config"))
        pipe.zcard(self.key(event_id, "waiting"))
        pipe.zcard(self.key(event_id, "pre"))
        pipe.zcard(self.key(event_id, "active"))
        pipe.hgetall(self.key(event_id, "state"))
        pipe.hgetall(self.key(event_id, "rate"))
        pipe.zcard(self.key(event_id, "unclaimed"))
        config, waiting, pre, active, state, rate, unclaimed = await pipe.execute()
        state = {text(k): text(v) for k, v in state.items()}
        raw_auto_rate = state.get("auto_rate")
        auto_rate = None if raw_auto_rate is None else float(raw_auto_rate)
        by_second = {int(k): int(v) for k, v in rate.items()}
        queue_config = self.config_from(config)
        now_second = int(time.time())
        presale_until = int(state.get("presale_until", 0))
        if presale_until <= time.time() * 1000:
            presale_until = 0  # none, or over: the general sale is on
        return Figures(
            config=queue_config,
            waiting=int(waiting),
            pre_queue=int(pre),
            active=int(active),
            admitted_total=int(state.get("admitted_total", 0)),
            admitted_by_second=by_second,
            drawn=state.get("drawn") == "1",
            sold_out=state.get("sold_out") == "1",
            auto_rate=auto_rate,
            measured_per_minute=measured_rate_per_minute(by_second, now_second),
            pace_per_minute=admission_pace(
                set_rate(queue_config, auto_rate),
                by_second,
                now_second,
                slots_free=int(active) < queue_config.max_active,
            ),
            all_held=state.get("all_held") == "1" and state.get("sold_out") != "1",
            unclaimed=int(unclaimed),
            seats_per_fan=_seats_per_fan(state),
            presale_held=bool(presale_until)
            and state.get("presale_held") == "1"
            and state.get("sold_out") != "1",
            general_sale_ms=presale_until,
        )

"""An admitted fan's session and its claim window in Redis, as the booking front door asks
about them (through :class:`waitingroom.queue.port.QueuePort`): where the session stands
for a reserve (and the session given back, if Redis lost it), a hold made, too few seats
found. Scripts in :mod:`waitingroom.queue.scripts_claims`."""

from __future__ import annotations

from ticketing.config import Settings
from ticketing.redis_connect import RedisClient
from waitingroom.queue import scripts
from waitingroom.queue.store_keys import QueueKeys

# KEEP_CLAIM's keys, in its order.
_SESSION_KEYS = ("active", "unclaimed", "state", "config", "sessions", "waiting", "pre", "seen")


class SessionStore(QueueKeys):
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._claim = redis.register_script(scripts.CLAIM)
        self._hurry_claim = redis.register_script(scripts.HURRY_CLAIM)
        self._keep_claim = redis.register_script(scripts.KEEP_CLAIM)

    async def session_ends_ms(self, event_id: int, user_id: str) -> int | None:
        """When this fan's admitted session ends (epoch ms), or None when they have none
        (never admitted, or it ended by booking, leaving, expiry or sell-out)."""
        score = await self.redis.zscore(self.key(event_id, "active"), user_id)
        return None if score is None else int(score)

    async def session_for_reserve(
        self,
        event_id: int,
        user_id: str,
        keep_ms: int,
        lost: tuple[str, int] | None = None,
    ) -> tuple[int | None, int | None, bool]:
        """(when the fan's session ends, when its claim window closes unless they hold
        seats by then: None once they do), epoch ms, and whether it was restored now;
        (None, None, False) without a session. For a reserve about to be sent: a claim
        window still open stays open at least ``keep_ms`` more (scripts KEEP_CLAIM), so
        the answer, or a retry's, is not refused for a window that closed while the reserve
        was under way. ``lost``: (epoch, session end ms) of the fan's admission token,
        whose session is restored if Redis lost it since (see KEEP_CLAIM)."""
        epoch, until_ms = lost or ("", 0)
        ends, claim_by, restored = await self._keep_claim(
            keys=self.keys(event_id, *_SESSION_KEYS),
            args=[user_id, keep_ms, epoch, until_ms, self.settings.admission_claim_seconds],
        )
        if int(ends) < 0:
            return None, None, False
        return int(ends), None if int(claim_by) < 0 else int(claim_by), bool(int(restored))

    async def restore_session(self, event_id: int, user_id: str, epoch: str, until_ms: int) -> bool:
        """Give an admitted fan back the session ending at ``until_ms`` that the queue
        state ``epoch`` granted them, if Redis lost that state since (as a reserve with
        their token would: KEEP_CLAIM). True when restored now."""
        _, _, restored = await self.session_for_reserve(event_id, user_id, 0, (epoch, until_ms))
        return restored

    async def claim(self, event_id: int, user_id: str, seats: int) -> bool:
        """Record a 201 reserve: the fan holds ``seats`` more (their first hold of the
        session: True). Admission counts those seats as taken from now on."""
        first = await self._claim(
            keys=self.keys(event_id, "unclaimed", "state"), args=[user_id, seats]
        )
        return bool(int(first))

    async def hurry_claim(self, event_id: int, user_id: str, grace_ms: int) -> bool:
        """The fan's reserve found too few seats: their claim window closes within
        ``grace_ms`` (sooner if it already does). True when it moved."""
        moved = await self._hurry_claim(
            keys=self.keys(event_id, "unclaimed"), args=[user_id, grace_ms]
        )
        return bool(int(moved))
